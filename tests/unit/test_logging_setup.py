"""Structured logs: one JSON object per line with the event's id, company and customer, plain
text on request, no secrets; and the consumer's handler binds the event to its lines."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from pydantic import SecretStr

from consumer.handler import Record, RecordHandler
from schemas.codec import encode
from schemas.events import PaymentEvent, PaymentPayload, Source, payment_event_id
from vb2po.errors import TerminalError, TransientError
from vb2po.logging_setup import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    bind_event,
    current_context,
    event_context,
    resolve_format,
)
from vb2po.retry import Backoff


@pytest.fixture
def capture():
    """A logger writing through the formatter under test into a buffer."""
    def make(formatter: logging.Formatter):
        buffer = io.StringIO()
        handler = logging.StreamHandler(buffer)
        handler.setFormatter(formatter)
        logger = logging.getLogger(f"test.logging.{uuid.uuid4().hex}")
        logger.propagate = False
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        return logger, buffer
    return make


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_event_fields(capture):
    log, out = capture(JsonFormatter())
    with event_context(event_id="e-1", company=1, customer=10001):
        log.info("applied %s", "payment")
    log.info("no event here")
    first, second = lines(out)
    assert first["message"] == "applied payment" and first["level"] == "INFO" and first["logger"] == log.name
    assert (first["event_id"], first["company"], first["customer"]) == ("e-1", 1, 10001)
    assert list(first)[4:7] == ["event_id", "company", "customer"]  # right after the message
    datetime.fromisoformat(first["time"])
    assert "event_id" not in second and "company" not in second  # the context ended with the block


def test_extra_fields_join_and_win_over_the_context_and_never_overwrite_the_basics(capture):
    log, out = capture(JsonFormatter())
    with event_context(company=1, customer=10001):
        log.warning("bad row", extra={"customer": 10002, "reason": "missing_invoice_no", "level_hint": "x"})
    (line,) = lines(out)
    assert (line["company"], line["customer"], line["reason"]) == (1, 10002, "missing_invoice_no")
    assert line["level"] == "WARNING"


def test_bind_event_adds_to_the_innermost_block_only(capture):
    log, out = capture(JsonFormatter())
    with event_context(topic="t", partition=3):
        with event_context(offset=7):
            bind_event(event_id="e-2", company=2, customer=None)  # None is left out
            log.info("inside")
            assert current_context() == {"topic": "t", "partition": 3, "offset": 7, "event_id": "e-2", "company": 2}
        log.info("outer")
    inside, outer = lines(out)
    assert inside["event_id"] == "e-2" and "customer" not in inside
    assert "event_id" not in outer and outer["partition"] == 3


def test_the_context_belongs_to_one_thread(capture):
    log, out = capture(JsonFormatter())
    seen = {}
    with event_context(event_id="main-thread"):
        worker = threading.Thread(target=lambda: seen.update(current_context()))
        worker.start()
        worker.join()
    assert seen == {}


def test_a_record_formatted_later_keeps_the_context_it_was_logged_in():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)  # formatted later, like a queue handler would

    keep = Keep()
    keep.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.logging.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(keep)
    with event_context(event_id="e-9", company=3, customer=30001):
        logger.warning("later")
    line = json.loads(JsonFormatter().format(records[0]))
    assert (line["event_id"], line["company"], line["customer"]) == ("e-9", 3, 30001)


def test_secrets_are_masked_even_when_passed_as_fields(capture):
    log, out = capture(JsonFormatter())
    log.info("connecting", extra={"password": "hunter2", "subscription_key": "sk-live", "odbc": "Pwd=x",
                                  "api": SecretStr("s3cret"), "source_key": "JNo=1;EntNo=2"})
    (line,) = lines(out)
    text = out.getvalue()
    assert "hunter2" not in text and "sk-live" not in text and "Pwd=x" not in text and "s3cret" not in text
    assert line["password"] == line["subscription_key"] == line["odbc"] == "**********"
    assert line["source_key"] == "JNo=1;EntNo=2"  # a row key is no secret


def test_exceptions_stay_inside_the_one_json_line(capture):
    log, out = capture(JsonFormatter())
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed", extra={"company": 1})
    assert len(out.getvalue().splitlines()) == 1
    (line,) = lines(out)
    assert "RuntimeError: boom" in line["exception"] and line["company"] == 1


def test_text_lines_carry_the_event_fields_at_the_end(capture):
    log, out = capture(TextFormatter())
    with event_context(event_id="e-3", company=1, customer=10001):
        log.info("applied")
    log.info("plain")
    first, second = out.getvalue().splitlines()
    assert first.endswith("INFO " + log.name + ": applied [event_id=e-3 company=1 customer=10001]")
    assert second.endswith(": plain")


def test_the_format_comes_from_the_flag_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.delenv("VB2PO_LOG_FORMAT", raising=False)
    assert resolve_format(None) == "json"
    assert resolve_format(None, default="text") == "text"
    monkeypatch.setenv("VB2PO_LOG_FORMAT", "TEXT")
    assert resolve_format(None) == "text"
    assert resolve_format("json") == "json"
    monkeypatch.setenv("VB2PO_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="unknown log format"):
        resolve_format(None)


def _run_cli_logging(*args: str, env: dict | None = None) -> str:
    """Run `vb2po`'s logging setup in a fresh interpreter (as a service starts) and log one line."""
    code = (
        "import logging, sys\n"
        "from vb2po import cli\n"
        "parser = cli.build_parser()\n"
        "args, _ = parser.parse_known_args(sys.argv[1:])\n"
        "from vb2po.logging_setup import configure_logging\n"
        "configure_logging(args.log_format, default='json' if args.command in ('producer', 'consumer') else 'text')\n"
        "logging.getLogger('vb2po.x').info('hello', extra={'company': 1})\n"
        "import uvicorn.config\n"
        "assert all(l.get('propagate') for l in uvicorn.config.LOGGING_CONFIG['loggers'].values())\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "VB2PO_LOG_FORMAT"} | (env or {})
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment,
                            timeout=60, check=True)
    return result.stderr.strip()


def test_services_log_json_by_default_and_text_when_asked():
    assert json.loads(_run_cli_logging("producer"))["company"] == 1
    assert json.loads(_run_cli_logging("consumer"))["message"] == "hello"
    assert _run_cli_logging("--log-format", "text", "consumer").endswith("INFO vb2po.x: hello [company=1]")
    assert _run_cli_logging("consumer", env={"VB2PO_LOG_FORMAT": "text"}).endswith(": hello [company=1]")
    assert _run_cli_logging("status").endswith(": hello [company=1]")  # operator commands: for people


def _payment_event() -> PaymentEvent:
    return PaymentEvent(
        event_id=payment_event_id(1, 5, 6), schema_version=2, source=Source(company_no=1, table="CustTr", key="JNo=5;EntNo=6"),
        occurred_at=datetime(2026, 3, 15, 10, tzinfo=timezone.utc), produced_at=datetime.now(timezone.utc),
        payload=PaymentPayload(company_no=1, jno=5, entno=6, customer_no=10001, invoice_no="100001",
                               amount=Decimal("100.00"), currency="NOK", voucher_no=506,
                               voucher_date=date(2026, 3, 15), text="Innbetaling 100001"),
    )


class _Sink:
    def __init__(self):
        self.letters = []

    def send(self, letter, key):
        self.letters.append(letter)
        return f"0-{len(self.letters)}"


def test_the_consumer_handler_puts_the_event_on_every_line_it_causes():
    event = _payment_event()

    class Flaky:
        calls = 0

        def apply(self, e, *seen, **options):
            self.calls += 1
            logging.getLogger("consumer.payments").info("posting")
            if self.calls == 1:
                raise TransientError("PowerOffice answered 503", reason="http_503")
            raise TerminalError("invoice not found", reason="invoice_not_found")

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    consumer_logger = logging.getLogger("consumer")
    consumer_logger.addHandler(handler)
    old_level = consumer_logger.level
    consumer_logger.setLevel(logging.INFO)
    try:
        result = RecordHandler(Flaky(), Flaky(), _Sink(), backoff=Backoff(base_s=0.001, cap_s=0.001)).handle(
            Record("ns.payments", 4, 42, b"1:10001", encode(event)))
    finally:
        consumer_logger.removeHandler(handler)
        consumer_logger.setLevel(old_level)
    assert result == "dead_lettered"
    logged = lines(out)
    assert [line["message"].split(" ")[0] for line in logged] == ["posting", "event", "posting", "dead-lettered"]
    for line in logged:
        assert (line["event_id"], line["company"], line["customer"]) == (str(event.event_id), 1, 10001)
        assert (line["topic"], line["partition"], line["offset"]) == ("ns.payments", 4, 42)
    assert logged[-1]["reason"] == "invoice_not_found"
    assert current_context() == {}  # nothing leaks out of handle()


def test_an_undecodable_record_is_logged_with_where_it_lies():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("consumer.handler")
    logger.addHandler(handler)
    try:
        RecordHandler(None, None, _Sink()).handle(Record("ns.payments", 1, 9, None, b"not json"))
    finally:
        logger.removeHandler(handler)
    (line,) = lines(out)
    assert (line["topic"], line["partition"], line["offset"], line["reason"]) == ("ns.payments", 1, 9, "undecodable")
    assert "event_id" not in line


def test_a_metadata_refresh_cancelled_by_a_closing_client_is_not_logged_as_an_error_but_others_are():
    from kafka.errors import Cancelled, KafkaConnectionError

    from vb2po.logging_setup import ClosingClientNoise

    def record(exc: Exception) -> logging.LogRecord:
        return logging.LogRecord("kafka.cluster", logging.ERROR, __file__, 1, "Metadata refresh: failed %s", (exc,), None)

    noise = ClosingClientNoise()
    assert noise.filter(record(Cancelled())) is False
    assert noise.filter(record(KafkaConnectionError("broker down"))) is True


def test_kafka_pythons_own_errors_are_warnings_and_a_repeated_line_shows_once_a_minute(capture):
    from vb2po.logging_setup import KafkaClientNoise

    now = [0.0]
    noise = KafkaClientNoise(every_s=60, clock=lambda: now[0])
    records = []
    for t in (0, 1, 2, 30, 61):
        now[0] = t
        record = logging.LogRecord("kafka.net.manager", logging.ERROR, __file__, 1, "Connection failed: %s", ("x",), None)
        if noise.filter(record):
            records.append(record)
    assert [(r.levelname, getattr(r, "repeats_left_out", 0)) for r in records] == [("WARNING", 0), ("WARNING", 3)]
    ours = logging.LogRecord("vb2po.startup", logging.ERROR, __file__, 1, "kafka: no bootstrap server answers", (), None)
    assert noise.filter(ours) and ours.levelname == "ERROR"  # only kafka-python's lines are touched
