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
        return f"invalid settings ({source}): {getattr(exc, 'problem', 'syntax error')} at line {mark.line + 1}, column {mark.column + 1}"
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
    from producer.service import ProducerService
    from vb2po.ops import serve_ops
    from vb2po.readiness import producer_checks

    settings = _load(args)
    if settings.metrics_port:
        serve_ops(settings.metrics_bind_address, settings.metrics_port, producer_checks(settings))
    service = ProducerService(settings)
    _stop_on_signals(service.stop)  # before start(): a SIGTERM while starting still stops cleanly
    admin_server = None
    try:
        service.start()
        if settings.admin.enabled:
            # Served by the producer process, not one of its own: fetch now must poll through these
            # company workers, since a second producer for a company would fence this one.
            from admin.api.server import serve_admin

            admin_server = serve_admin(settings, service, service.live)
        service.run()
    finally:
        if admin_server is not None:
            admin_server.stop()
        service.close()
    return 0


def cmd_consumer(args: argparse.Namespace) -> int:
    from consumer import applied_log
    from consumer.service import ConsumerService
    from vb2po.ops import serve_ops
    from vb2po.readiness import consumer_checks

    settings = _load(args)
    if args.group:  # a separate group, e.g. to replay a range while the regular consumers carry on
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"consumer_group": args.group})})
    if settings.metrics_port and not args.until_caught_up:
        serve_ops(settings.metrics_bind_address, settings.metrics_port, consumer_checks(settings))
    service = ConsumerService(settings)
    _stop_on_signals(service.stop)
    applied = applied_log.KafkaAppliedLog(settings.kafka)  # the console's "registered today"
    applied_log.install(applied)
    try:
        if args.until_caught_up:
            return _consume_until_caught_up(settings, service)
        try:
            service.run()
        finally:
            service.close()
        return 0
    finally:
        applied_log.install(None)
        applied.close()


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vb2po", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help=f"settings file (YAML); default ${settings_module.CONFIG_ENV}")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--log-format", choices=("json", "text"),
                        help="log lines as JSON objects (default of producer and consumer) or plain text "
                             "(default of the other commands); default $VB2PO_LOG_FORMAT")
    sub = parser.add_subparsers(dest="command", required=True)
    api = _api_options()

    common = _common_options()
    sub.add_parser("producer", parents=[common], help="poll Visma and publish payment events to Kafka (and serve the admin API)")
    consumer = sub.add_parser("consumer", parents=[common], help="apply payment events to PowerOffice and mark them in Visma")
    consumer.add_argument("--group", help="consume in this group instead of kafka.consumer_group (replay through it)")
    consumer.add_argument("--until-caught-up", action="store_true", help="stop once the group has nothing left")

    config = sub.add_parser("config", help="check, show or change the integration settings")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("check", parents=[common], help="validate the settings, test Kafka, each Visma company and PowerOffice client")
    show = config_sub.add_parser("show", parents=[api], help="the settings the producer runs with, secrets masked, "
                                                             "and which ones were changed through the admin API")
    show.add_argument("--json", action="store_true")
    change = config_sub.add_parser("set", parents=[api], help="change integration settings while vb2po runs, e.g. "
                                                              "marker.field=Gr5 lookback_date=2026-03-01")
    change.add_argument("assignments", nargs="+", metavar="PATH=VALUE")
    change.add_argument("--dry-run", action="store_true", help="check the change and show what it would do; change nothing")
    reset = config_sub.add_parser("reset", parents=[api], help="put settings back to the settings file's values")
    reset.add_argument("paths", nargs="+", metavar="PATH")
    reset.add_argument("--dry-run", action="store_true", help="show what it would do; change nothing")

    token = sub.add_parser("token", help="personal tokens for the admin API: create, list, revoke")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    local = argparse.ArgumentParser(add_help=False)  # (--config comes with the api options)
    local.add_argument("--local", action="store_true",
                       help="write straight to Kafka with the settings file (the bootstrap path for the first token)")
    create = token_sub.add_parser("create", parents=[api, local], help="issue a token for a declared user (shown once)")
    create.add_argument("--user", required=True)
    create.add_argument("--ttl-days", type=int, help="lifetime in days (default admin.token_ttl_days)")
    create.add_argument("--description", default="", help="what or who it is for")
    token_sub.add_parser("list", parents=[api, local], help="every token: id, user, state, expiry (never the token)")
    revoke = token_sub.add_parser("revoke", parents=[api, local], help="revoke a token by its id")
    revoke.add_argument("token_id")

    sub.add_parser("whoami", parents=[api], help="who your token says you are, and your permissions")

    fetch = sub.add_parser("fetch-now", parents=[api], help="poll now for one invoice client, or for all")
    which = fetch.add_mutually_exclusive_group(required=True)
    which.add_argument("--client", help="invoice client name (needs fetch.client)")
    which.add_argument("--all", action="store_true", help="every invoice client (needs fetch.all)")
    fetch.add_argument("--wait", action="store_true", help="wait until the consumers have applied what was published")
    fetch.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")
    fetch.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    fetch.add_argument("--json", action="store_true")

    status = sub.add_parser("status", parents=[api], help="per company and invoice client: polls, lags, dead letters, blocks")
    status.add_argument("--json", action="store_true")

    letters = sub.add_parser("dead-letters", help="what could not be published or applied: list, show, redrive")
    letters_sub = letters.add_subparsers(dest="letters_command", required=True)
    listing = letters_sub.add_parser("list", parents=[api])
    listing.add_argument("--reason")
    listing.add_argument("--company", type=int)
    listing.add_argument("--stage", choices=("producer", "consumer"))
    listing.add_argument("--open", action="store_true", help="only those not redriven yet")
    listing.add_argument("--json", action="store_true")
    show = letters_sub.add_parser("show", parents=[api])
    show.add_argument("id", help="partition-offset, as listed")
    redrive = letters_sub.add_parser("redrive", parents=[api], help="publish again to the original topic and key")
    redrive.add_argument("ids", nargs="*", help="letter ids (partition-offset)")
    redrive.add_argument("--all", action="store_true", help="every open letter (narrow with --reason / --company)")
    redrive.add_argument("--reason")
    redrive.add_argument("--company", type=int)
    redrive.add_argument("--dry-run", action="store_true")

    replay = sub.add_parser("replay", parents=[api], help="move a consumer group back to an offset or a point in time")
    where = replay.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-offset", type=int)
    where.add_argument("--to-time", help="ISO time with zone, e.g. 2026-03-15T08:00:00+01:00")
    where.add_argument("--to-beginning", action="store_true")
    replay.add_argument("--topic", action="append", choices=("payments", "credit-blocks"), help="repeatable; default both")
    replay.add_argument("--partition", action="append", type=int, help="repeatable; default all")
    replay.add_argument("--through-group", help="replay through this separate group; the regular consumers carry on")
    replay.add_argument("--dry-run", action="store_true", help="show what would be processed again; change nothing")
    replay.add_argument("--allow-skip", action="store_true", help="allow moving forward past unprocessed events")
    replay.add_argument("--limit", type=int, default=50, help="events listed (default 50)")
    replay.add_argument("--json", action="store_true")

    reconcile = sub.add_parser("reconcile", parents=[api], help="outstanding per invoice: Visma against PowerOffice")
    reconcile.add_argument("--client", help="one invoice client (default all)")
    reconcile.add_argument("--format", choices=("table", "csv", "json"), default="table")
    reconcile.add_argument("--output", help="write the result to this file (progress still on stderr)")
    reconcile.add_argument("--timeout", type=float, default=3600)
    reconcile.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)

    audit = sub.add_parser("audit", parents=[api], help="the audit log: who did what, when, with what outcome")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--actor")
    audit.add_argument("--json", action="store_true")

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
