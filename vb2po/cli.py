"""The `vb2po` command: run the producer, the consumer or the sandbox; operator actions."""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from vb2po import settings as settings_module


def _load(args: argparse.Namespace) -> settings_module.Settings:
    try:
        return settings_module.load(args.config)
    except Exception as exc:  # noqa: BLE001 - shown to a person, with the file named
        sys.exit(f"vb2po: invalid settings ({args.config or '$' + settings_module.CONFIG_ENV}): {exc}")


def _stop_on_signals(stop) -> None:
    def handler(signum, frame):  # noqa: ARG001
        logging.getLogger("vb2po").info("received signal %s, stopping", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_producer(args: argparse.Namespace) -> int:
    from producer.service import ProducerService
    from vb2po import metrics

    settings = _load(args)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    service = ProducerService(settings).start()
    _stop_on_signals(service.stop)
    try:
        service.run()
    finally:
        service.close()
    return 0


def cmd_consumer(args: argparse.Namespace) -> int:
    from consumer.service import ConsumerService
    from vb2po import metrics

    settings = _load(args)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    service = ConsumerService(settings)
    _stop_on_signals(service.stop)
    try:
        service.run()
    finally:
        service.close()
    return 0


def cmd_fetch_now(args: argparse.Namespace) -> int:
    from producer.service import ProducerService

    settings = _load(args)
    service = ProducerService(settings).start()
    try:
        for company_no, outcome in service.fetch_now(args.client).items():
            print(f"company {company_no}: {outcome.published} payments published, {outcome.bad_rows} bad rows")
    finally:
        service.close()
    return 0


def cmd_sandbox(args: argparse.Namespace, rest: list[str]) -> int:
    from sandbox.server import main as sandbox_main

    return sandbox_main(rest) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vb2po", description=__doc__)
    parser.add_argument("--config", help=f"settings file (YAML); default ${settings_module.CONFIG_ENV}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("producer", help="poll Visma and publish payment events to Kafka")
    sub.add_parser("consumer", help="apply payment events to PowerOffice and mark them in Visma")
    fetch = sub.add_parser("fetch-now", help="poll now for one invoice client or for all")
    which = fetch.add_mutually_exclusive_group(required=True)
    which.add_argument("--client", help="invoice client name")
    which.add_argument("--all", action="store_true", help="every invoice client")
    sub.add_parser("sandbox", help="run the local PowerOffice sandbox (see `vb2po sandbox --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if args.command == "sandbox":
        return cmd_sandbox(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return {"producer": cmd_producer, "consumer": cmd_consumer, "fetch-now": cmd_fetch_now}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
