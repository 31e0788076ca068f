"""The `vb2po` command: run the producer, the consumer or the sandbox; operator actions.

Operator actions that need a permission go through the admin API (served by the producer
with `admin.enabled`), authenticated by the operator's personal token (`--token`, or better
the VB2PO_TOKEN variable); `config check` and `token ... --local` work from the settings file.
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from typing import Any

from vb2po import settings as settings_module


def _settings_problem(args: argparse.Namespace, exc: Exception) -> str:
    """What is wrong with the settings, never quoting a value (it may be a secret)."""
    from pydantic import ValidationError

    from admin.actions.config_check import settings_errors

    source = args.config or "$" + settings_module.CONFIG_ENV
    if isinstance(exc, ValidationError):
        lines = [f.message for f in settings_errors(exc)]
        return f"invalid settings ({source}):\n  " + "\n  ".join(lines) + "\n  (settings.example.yaml documents every key)"
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:  # YAML syntax: say where, not what (the line may hold a secret)
        return (f"invalid settings ({source}): {getattr(exc, 'problem', 'syntax error')} "
                f"at line {mark.line + 1}, column {mark.column + 1}")
    return f"invalid settings ({source}): {type(exc).__name__}: {exc}"


def _load(args: argparse.Namespace) -> settings_module.Settings:
    try:
        return settings_module.load(args.config)
    except Exception as exc:  # noqa: BLE001 - shown to a person, with the file named
        sys.exit(f"vb2po: {_settings_problem(args, exc)}")


def _stop_on_signals(stop) -> None:
    def handler(signum, frame):  # noqa: ARG001
        logging.getLogger("vb2po").info("received signal %s, stopping", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_producer(args: argparse.Namespace) -> int:
    from vb2po.ops import serve_ops
    from vb2po.readiness import producer_checks
    from vb2po.startup import keep_running

    settings = _load(args)
    if settings.metrics_port:
        serve_ops(settings.metrics_bind_address, settings.metrics_port, producer_checks(settings))
    stopping, current = _stoppable()  # before starting: a SIGTERM while starting still stops cleanly
    return keep_running("the producer", settings, stopping, lambda: _run_producer(settings, stopping, current))


def _run_producer(settings: settings_module.Settings, stopping: threading.Event, current: dict) -> None:
    from producer.service import ProducerService

    service = current["service"] = ProducerService(settings)
    admin_server = None
    try:
        service.start()
        if settings.admin.enabled:
            # Served by the producer process, not one of its own: fetch now must poll through these
            # company workers, since a second producer for a company would fence this one.
            from admin.api.server import serve_admin

            admin_server = serve_admin(settings, service, service.live)
        if not stopping.is_set():
            service.run()
    finally:
        if admin_server is not None:
            admin_server.stop()
        service.close()


def cmd_consumer(args: argparse.Namespace) -> int:
    from consumer.service import ConsumerService
    from vb2po.ops import serve_ops
    from vb2po.readiness import consumer_checks
    from vb2po.startup import keep_running, wait_until_reachable

    settings = _load(args)
    if args.group:  # a separate group, e.g. to replay a range while the regular consumers carry on
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"consumer_group": args.group})})
    if settings.metrics_port and not args.until_caught_up:
        serve_ops(settings.metrics_bind_address, settings.metrics_port, consumer_checks(settings))
    stopping, current = _stoppable()
    if args.until_caught_up:
        if not wait_until_reachable(settings, stopping, poweroffice=True):
            return 0
        service = current["service"] = ConsumerService(settings)
        return _consume_until_caught_up(settings, service)

    def run() -> None:
        service = current["service"] = ConsumerService(settings)
        try:
            if not stopping.is_set():
                service.run()
        finally:
            service.close()
    return keep_running("the consumer", settings, stopping, run, poweroffice=True)


def _stoppable() -> tuple[threading.Event, dict]:
    """An event set by SIGTERM/SIGINT, which also stops the service in `current["service"]`."""
    stopping = threading.Event()
    current: dict[str, Any] = {}

    def stop() -> None:
        stopping.set()
        if current.get("service") is not None:
            current["service"].stop()
    _stop_on_signals(stop)
    return stopping, current


def _consume_until_caught_up(settings: settings_module.Settings, service) -> int:
    """Run the consumer until its group has no record left to process, then stop."""
    from admin.actions.kafka_view import KafkaView

    kafka = settings.kafka
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    runner = threading.Thread(target=run, name="consumer", daemon=True)
    runner.start()
    stop = threading.Event()
    try:
        with KafkaView(kafka) as view:
            while runner.is_alive() and not stop.wait(1.0):
                left = sum(view.pending(kafka.consumer_group, [kafka.topics.payments, kafka.topics.credit_blocks]).values())
                print(f"group {kafka.consumer_group}: {left} record(s) left", file=sys.stderr, flush=True)
                if left == 0:
                    break
    finally:
        service.stop()
        runner.join(timeout=60)
        service.close()
    if errors:
        print(f"vb2po: the consumer failed: {errors[0]!r}", file=sys.stderr)
        return 1
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from admin.cli import commands

    if args.config_command == "show":
        return commands.run_api_command(commands.config_show, args, lambda: settings_module.load(args.config))
    if args.config_command in ("set", "reset"):
        return commands.run_api_command(commands.config_change, args, lambda: settings_module.load(args.config))
    from admin.actions.config_check import failed, render, run_checks

    try:
        settings = settings_module.load(args.config)
    except Exception as exc:  # noqa: BLE001 - the first finding
        print(f"FAIL  settings: {_settings_problem(args, exc)}")
        print("vb2po config check: 1 problem")
        return 1
    findings = run_checks(settings, with_changes=True)
    print(render(findings))
    problems = sum(1 for f in findings if f.level == "fail")
    warnings = sum(1 for f in findings if f.level == "warn")
    if failed(findings):
        print(f"vb2po config check: {problems} problem(s), {warnings} warning(s)")
        return 1
    print("vb2po config check: all good" + (f" ({warnings} warning(s))" if warnings else ""))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from admin.cli import commands

    if args.local:
        return commands.token_local(args, _load(args))
    return commands.run_api_command(commands.token_api, args, lambda: settings_module.load(args.config))


def _api_command(name: str):
    def run(args: argparse.Namespace) -> int:
        from admin.cli import commands

        return commands.run_api_command(getattr(commands, name), args, lambda: settings_module.load(args.config))
    return run


def cmd_sandbox(args: argparse.Namespace, rest: list[str]) -> int:
    from sandbox.server import main as sandbox_main

    return sandbox_main(rest) or 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vb2po")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="settings file (also accepted before the command)")
    return common


def _api_options() -> argparse.ArgumentParser:
    api = argparse.ArgumentParser(add_help=False, parents=[_common_options()])
    api.add_argument("--admin-url", help="the admin API (default $VB2PO_ADMIN_URL, else admin.url / admin.port "
                                         "of the settings, else http://127.0.0.1:9465)")
    api.add_argument("--token", help="your personal token; prefer the VB2PO_TOKEN variable (not in shell history)")
    return api


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


EXAMPLES = _examples(
    "vb2po --config settings.yaml config check      # test the settings and every connection first",
    "VB2PO_CONFIG=settings.yaml vb2po producer       # the producer (JSON log lines)",
    "vb2po --config settings.yaml --log-format text consumer",
    "vb2po status                                    # with VB2PO_TOKEN and VB2PO_ADMIN_URL set",
    "vb2po <command> --help                          # each command's options and examples",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vb2po", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the version of vb2po and exit")
    parser.add_argument("--config", help=f"settings file (YAML); default ${settings_module.CONFIG_ENV}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log DEBUG lines too")
    parser.add_argument("--log-format", choices=("json", "text"),
                        help="log lines as JSON objects (default of producer and consumer) or plain text "
                             "(default of the other commands); default $VB2PO_LOG_FORMAT")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    api = _api_options()
    common = _common_options()

    def command(subparsers, name: str, help: str, examples: tuple[str, ...], **kwargs) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, help=help, description=help, epilog=_examples(*examples),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def json_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    command(sub, "producer", "poll Visma and publish payment events to Kafka (and serve the admin API)",
            ("vb2po --config settings.yaml producer",
             "VB2PO_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 vb2po --config settings.yaml producer"), parents=[common])
    consumer = command(sub, "consumer", "apply payment events to PowerOffice and mark them in Visma",
                       ("vb2po --config settings.yaml consumer",
                        "vb2po --config settings.yaml consumer --group vb2po-replay --until-caught-up"), parents=[common])
    consumer.add_argument("--group", help="consume in this group instead of kafka.consumer_group (replay through it)")
    consumer.add_argument("--until-caught-up", action="store_true", help="stop once the group has nothing left")

    config = command(sub, "config", "check, show or change the integration settings",
                     ("vb2po --config settings.yaml config check", "vb2po config show",
                      "vb2po config set marker.field=Gr5 --dry-run"))
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    command(config_sub, "check", "validate the settings, test Kafka, each Visma company and PowerOffice client",
            ("vb2po --config settings.yaml config check", "VB2PO_CONFIG=/etc/vb2po/settings.yaml vb2po config check"),
            parents=[common])
    show = command(config_sub, "show", "the settings the producer runs with, secrets masked, and which ones were "
                                       "changed through the admin API",
                   ("vb2po config show", "vb2po config show --json"), parents=[api])
    json_option(show)
    change = command(config_sub, "set", "change integration settings while vb2po runs",
                     ("vb2po config set marker.field=Gr5 lookback_date=2026-03-01",
                      "vb2po config set invoice_clients.hovedkontor.bank_account=1950 --dry-run"), parents=[api])
    change.add_argument("assignments", nargs="+", metavar="PATH=VALUE", help="a setting's path and its new value")
    change.add_argument("--dry-run", action="store_true", help="check the change and show what it would do; change nothing")
    reset = command(config_sub, "reset", "put settings back to the settings file's values",
                    ("vb2po config reset marker.field", "vb2po config reset lookback_date --dry-run"), parents=[api])
    reset.add_argument("paths", nargs="+", metavar="PATH", help="a setting's path, e.g. marker.field")
    reset.add_argument("--dry-run", action="store_true", help="show what it would do; change nothing")

    token = command(sub, "token", "personal tokens for the admin API: create, list, revoke",
                    ("vb2po --config settings.yaml token create --user kari --local", "vb2po token list"))
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="SUBCOMMAND")
    local = argparse.ArgumentParser(add_help=False)  # (--config comes with the api options)
    local.add_argument("--local", action="store_true",
                       help="write straight to Kafka with the settings file (the bootstrap path for the first token)")
    create = command(token_sub, "create", "issue a token for a declared user (shown once)",
                     ("vb2po --config settings.yaml token create --user kari --local   # the first token",
                      "vb2po token create --user ola --ttl-days 30 --description 'invoice overview'"),
                     parents=[api, local])
    create.add_argument("--user", required=True, help="a user declared under admin.users")
    create.add_argument("--ttl-days", type=int, help="lifetime in days (default admin.token_ttl_days)")
    create.add_argument("--description", default="", help="what or who it is for")
    command(token_sub, "list", "every token: id, user, state, expiry (never the token)",
            ("vb2po token list", "vb2po --config settings.yaml token list --local"), parents=[api, local])
    revoke = command(token_sub, "revoke", "revoke a token by its id",
                     ("vb2po token revoke 3f9c2a61d0be",), parents=[api, local])
    revoke.add_argument("token_id", help="the token's id (12 hex digits, as listed)")

    command(sub, "whoami", "who your token says you are, and your permissions", ("VB2PO_TOKEN=vb2po_... vb2po whoami",),
            parents=[api])

    fetch = command(sub, "fetch-now", "poll now for one invoice client, or for all",
                    ("vb2po fetch-now --client hovedkontor --wait", "vb2po fetch-now --all --json"), parents=[api])
    which = fetch.add_mutually_exclusive_group(required=True)
    which.add_argument("--client", help="invoice client name (needs fetch.client)")
    which.add_argument("--all", action="store_true", help="every invoice client (needs fetch.all)")
    fetch.add_argument("--wait", action="store_true", help="wait until the consumers have applied what was published")
    fetch.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")
    fetch.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    json_option(fetch)

    status = command(sub, "status", "per company and invoice client: polls, lags, dead letters, blocks",
                     ("vb2po status", "vb2po status --json"), parents=[api])
    json_option(status)

    letters = command(sub, "dead-letters", "what could not be published or applied: list, show, redrive",
                      ("vb2po dead-letters list --open", "vb2po dead-letters redrive 2-41"))
    letters_sub = letters.add_subparsers(dest="letters_command", required=True, metavar="SUBCOMMAND")
    listing = command(letters_sub, "list", "the dead letters: id, stage, reason, company, source key, state",
                      ("vb2po dead-letters list --open --reason lock_date", "vb2po dead-letters list --company 2 --json"),
                      parents=[api])
    listing.add_argument("--reason", help="only letters with this reason, e.g. lock_date")
    listing.add_argument("--company", type=int, help="only letters of this Visma company")
    listing.add_argument("--stage", choices=("producer", "consumer"), help="only letters of the producer or the consumer")
    listing.add_argument("--open", action="store_true", help="only those not redriven yet")
    json_option(listing)
    show = command(letters_sub, "show", "one dead letter with its reason and original event",
                   ("vb2po dead-letters show 2-41",), parents=[api])
    show.add_argument("id", help="partition-offset, as listed")
    redrive = command(letters_sub, "redrive", "publish again to the original topic and key",
                      ("vb2po dead-letters redrive 2-41 2-42", "vb2po dead-letters redrive --all --reason lock_date --dry-run"),
                      parents=[api])
    redrive.add_argument("ids", nargs="*", help="letter ids (partition-offset)")
    redrive.add_argument("--all", action="store_true", help="every open letter (narrow with --reason / --company)")
    redrive.add_argument("--reason", help="with --all: only letters with this reason")
    redrive.add_argument("--company", type=int, help="with --all: only letters of this Visma company")
    redrive.add_argument("--dry-run", action="store_true", help="show what would be redriven; publish nothing")

    replay = command(sub, "replay", "move a consumer group back to an offset or a point in time",
                     ("vb2po replay --to-time 2026-03-14T06:00:00+01:00 --dry-run",
                      "vb2po replay --to-beginning --topic payments --through-group vb2po-replay"), parents=[api])
    where = replay.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-offset", type=int, help="this offset in every chosen partition")
    where.add_argument("--to-time", help="ISO time with zone, e.g. 2026-03-15T08:00:00+01:00")
    where.add_argument("--to-beginning", action="store_true", help="the oldest record still kept")
    replay.add_argument("--topic", action="append", choices=("payments", "credit-blocks"), help="repeatable; default both")
    replay.add_argument("--partition", action="append", type=int, help="repeatable; default all")
    replay.add_argument("--through-group", help="replay through this separate group; the regular consumers carry on")
    replay.add_argument("--dry-run", action="store_true", help="show what would be processed again; change nothing")
    replay.add_argument("--allow-skip", action="store_true", help="allow moving forward past unprocessed events")
    replay.add_argument("--limit", type=int, default=50, help="events listed (default 50)")
    json_option(replay)

    reconcile = command(sub, "reconcile", "outstanding per invoice: Visma against PowerOffice",
                        ("vb2po reconcile --client hovedkontor",
                         "vb2po reconcile --format csv --output avstemming.csv"), parents=[api])
    reconcile.add_argument("--client", help="one invoice client (default all)")
    reconcile.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    reconcile.add_argument("--output", help="write the result to this file (progress still on stderr)")
    reconcile.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the result (default 3600)")
    reconcile.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)

    audit = command(sub, "audit", "the audit log: who did what, when, with what outcome",
                    ("vb2po audit", "vb2po audit --actor kari --limit 200 --json"), parents=[api])
    audit.add_argument("--limit", type=int, default=50, help="entries shown, newest (default 50)")
    audit.add_argument("--actor", help="only what this user did")
    json_option(audit)

    sub.add_parser("sandbox", help="run the local PowerOffice sandbox (see `vb2po sandbox --help`)", add_help=False)
    return parser


COMMANDS = {
    "producer": cmd_producer, "consumer": cmd_consumer, "config": cmd_config, "token": cmd_token,
    "whoami": _api_command("whoami"), "fetch-now": _api_command("fetch_now"), "status": _api_command("status"),
    "replay": _api_command("replay"), "reconcile": _api_command("reconcile"), "audit": _api_command("audit"),
}
LETTER_COMMANDS = {"list": "dead_letters_list", "show": "dead_letters_show", "redrive": "dead_letters_redrive"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: every thread's stack to stderr
    except (AttributeError, ValueError, OSError):  # stderr is no real file (captured, e.g. under pytest)
        pass
    from vb2po.logging_setup import configure_logging  # JSON lines for the services, text for people

    try:
        configure_logging(args.log_format, default="json" if args.command in ("producer", "consumer") else "text",
                          verbose=args.verbose)
    except ValueError as exc:  # VB2PO_LOG_FORMAT names no format
        parser.error(str(exc))
    if args.command == "sandbox":
        return cmd_sandbox(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "dead-letters":
        return _api_command(LETTER_COMMANDS[args.letters_command])(args)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
