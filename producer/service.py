"""The producer process: one worker per Visma company, each with its own cursor, schedule and
Kafka transactional id, so a slow or failing company never holds up another and a second
producer instance for the same company is fenced.

The companies' rounds run on a small pool of threads (`producer.threads`, `producer.schedule`),
each company when it is due: every `poll_interval_s` while it has new payments, every
`idle_poll_interval_s` once it has had none for a minute, so a producer with hundreds of quiet
companies does not spend its time asking each of them for nothing several times a second."""
from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone

from prometheus_client import Gauge

from producer import read_ahead
from producer.credit_blocks import CreditBlockPoller
from producer.payments import PaymentPoller, PollOutcome
from producer.publisher import KafkaTransactionalPublisher, ProducerFenced
from producer.recent import RecentlyPublished
from producer.schedule import Scheduler
from producer.state import CompanyState, StateCell, load_states
from vb2po import metrics
from vb2po.errors import TerminalError, TransientError
from vb2po.integration_settings import Overrides
from vb2po.kafka.topics import ensure_topics
from vb2po.live_settings import LiveSettings, follow_settings
from vb2po.retry import Backoff
from vb2po.settings import CompanySettings, Settings
from vb2po.visma.company import open_company

log = logging.getLogger(__name__)
IDLE_AFTER_S = 60.0  # a company without a new payment for this long is polled at the idle interval
START_THREADS = 16  # Kafka producers initialised side by side at start (one round trip each to the broker)


def transactional_id(company_no: int) -> str:
    return f"vb2po-producer-company-{company_no}"


def _as_vb2po_error(exc: Exception) -> TransientError | TerminalError:
    if isinstance(exc, (TransientError, TerminalError)):
        return exc
    # Connecting to Kafka or the database at start: worth another try later.
    return TransientError(f"{type(exc).__name__}: {exc}", reason="unavailable")


class CompanyWorker:
    """Everything the producer does for one company, opened lazily so a company that is down
    at start does not stop the others from starting."""

    def __init__(self, settings: Settings, company: CompanySettings, state: CompanyState,
                 publisher: KafkaTransactionalPublisher):
        self.settings = settings
        self.company = company
        self.initial_state = state
        self.publisher = publisher
        self.payments: PaymentPoller | None = None
        self.credit_blocks: CreditBlockPoller | None = None
        self.lock = threading.Lock()
        self.fenced = False
        self.last_success_at: float | None = None  # unix time of the last complete round (for `vb2po status`)
        self.last_failure: tuple[float, str] | None = None  # (unix time, reason) of the last failed round
        self._due = {"credit_blocks": 0.0, "reassert": time.monotonic() + settings.producer.reassert_interval_s}
        self._sweep_now = False  # set by a settings change: sweep at the next round, whenever the last one was
        self._active_until = 0.0  # monotonic: poll at poll_interval_s until then (a new payment was published)
        self.recent: RecentlyPublished | None = None  # what was published lately; kept across re-opens
        label = self.label  # the company's series, made once (a round is short: hundreds of them a second)
        self._poll_duration = metrics.POLL_DURATION.labels(label)
        self._rows_read = metrics.ROWS_READ.labels(label)
        self._published = {kind: metrics.EVENTS_PUBLISHED.labels(label, kind) for kind in ("payment", "credit_block")}
        # The gauges only once they have a value: a company that never polled successfully has no
        # last-success series (the VB2POPollNeverSucceeded alert asks for exactly that), not a 0.
        self._cursor_lag: Gauge | None = None
        self._last_success: Gauge | None = None

    @property
    def label(self) -> str:
        return str(self.company.company_no)

    def _open(self) -> tuple[PaymentPoller, CreditBlockPoller]:
        """The company's pollers, opened on first use (and after a settings change)."""
        if self.payments is not None and self.credit_blocks is not None:
            return self.payments, self.credit_blocks
        p = self.settings.producer
        source = open_company(self.settings, self.company, polling=True)
        publisher = self.publisher
        topics, zone = self.settings.kafka.topics, self.settings.zone
        cell = StateCell(self.initial_state)  # one company record, written by both pollers
        self.credit_blocks = CreditBlockPoller(source, publisher, topics, zone, self.initial_state.blocks, cell=cell,
                                               page_size=p.page_size)
        self.payments = PaymentPoller(source, publisher, topics, zone, cell, page_size=p.page_size,
                                      overlap_s=p.overlap_s, sweep_grace_s=p.sweep_grace_s,
                                      sweep_interval_s=p.sweep_interval_s, recent=self.recent)
        self.recent = self.payments.recent
        log.info("company %s: open; payments cursor %s, %s customers known",
                 self.label, self.initial_state.payments_cursor, len(self.initial_state.blocks),
                 extra={"company": self.company.company_no})
        return self.payments, self.credit_blocks

    def reconfigure(self, settings: Settings, version: int) -> None:
        """Take changed integration settings: the company is opened again with them (marker,
        payment rule, lookback) from where its cursor stands, and the sweep runs at once, so
        payments the old settings left behind are found now rather than in minutes."""
        with self.lock:
            self.settings = settings
            self.publisher.settings_version = version
            if self.payments is None or self.credit_blocks is None:
                return
            self.initial_state = replace(self.payments.state, blocks=dict(self.credit_blocks.blocks))
            self.payments.source.db.close_all()
            self.payments = self.credit_blocks = None
            self._sweep_now = True

    def fetch_now(self) -> PollOutcome:
        """Poll this company's payments now (the operator's "fetch now")."""
        with self.lock:
            try:
                payments, _ = self._open()
            except Exception as exc:  # noqa: BLE001 - classified, counted and re-raised
                raise _as_vb2po_error(exc) from exc
            return self._timed("payments", lambda: payments.poll_once(collect_keys=True))

    def tick(self) -> None:
        """One round of whatever is due: payments always; credit blocks, sweep, re-assertion on
        their own slower schedules."""
        with self.lock:
            try:
                payments, credit_blocks = self._open()
            except Exception as exc:  # noqa: BLE001
                raise _as_vb2po_error(exc) from exc
            p, now = self.settings.producer, time.monotonic()
            if self._timed("payments", payments.poll_once).published:
                self._active_until = now + IDLE_AFTER_S
            if now >= self._due["credit_blocks"] and self.settings.credit_block_sync:
                reassert = now >= self._due["reassert"]
                self._timed("credit_blocks", lambda: credit_blocks.poll_once(reassert=reassert))
                self._due["credit_blocks"] = now + p.credit_block_interval_s
                if reassert:
                    self._due["reassert"] = now + p.reassert_interval_s
            if self._sweep_now or time.time() >= self.sweep_due():
                outcome = self._timed("sweep", payments.sweep_once)
                if outcome.published:
                    log.warning("company %s: safety-net sweep published %s unmarked payments (published over %ss ago, "
                                "or never)", self.label, outcome.published, p.sweep_grace_s,
                                extra={"company": self.company.company_no})
                self._sweep_now = False
            self.last_success_at = time.time()
            if self._last_success is None:
                self._last_success = metrics.LAST_POLL_SUCCESS.labels(self.label)
            self._last_success.set(self.last_success_at)

    def sweep_due(self) -> float:
        """Unix time of the next sweep: a sweep interval after the last one, which the state topic
        keeps across restarts (so a producer restarted more often than that still sweeps on time);
        at once when no sweep ever ran."""
        state = self.payments.state if self.payments is not None else self.initial_state
        return 0.0 if state.last_sweep_at is None else state.last_sweep_at + self.settings.producer.sweep_interval_s

    def poll_interval(self) -> float:
        """Seconds until the next round: short while payments come, longer once the company is quiet."""
        p = self.settings.producer
        return p.poll_interval_s if time.monotonic() < self._active_until else max(p.poll_interval_s, p.idle_poll_interval_s)

    def _timed(self, kind: str, poll) -> PollOutcome:
        started = time.perf_counter()
        outcome: PollOutcome = poll()
        self._poll_duration.observe(time.perf_counter() - started)
        if outcome.rows_read:
            self._rows_read.inc(outcome.rows_read)
        if outcome.published:
            self._published["credit_block" if kind == "credit_blocks" else "payment"].inc(outcome.published)
        if kind == "payments" and outcome.newest_change is not None:
            age = (datetime.now(timezone.utc) - outcome.newest_change).total_seconds()
            if self._cursor_lag is None:
                self._cursor_lag = metrics.CURSOR_LAG.labels(self.label)
            self._cursor_lag.set(max(0.0, age))
        if outcome.published or outcome.bad_rows:
            log.info("company %s: %s: published %s events, %s bad rows", self.label, kind, outcome.published, outcome.bad_rows,
                     extra={"company": self.company.company_no})
        return outcome

    def close(self) -> None:
        self.publisher.close()
        if self.payments is not None:
            self.payments.source.db.close_all()


class _Rounds:
    """One company's rounds as the scheduler runs them: what is due, then when to come back (sooner
    after a new payment, later when quiet, backing off after failures; never once fenced)."""

    def __init__(self, service: "ProducerService", worker: CompanyWorker):
        self.service = service
        self.worker = worker
        self.backoff = Backoff(base_s=0.5, cap_s=30)
        self.attempt = 0

    def run_round(self) -> float | None:
        service, worker = self.service, self.worker
        if service._stop.is_set():
            return None
        if not service.settings.integration_enabled:  # switched off by an operator: idle until switched on
            return service.settings.producer.poll_interval_s
        try:
            worker.tick()
            self.attempt = 0
            return worker.poll_interval()
        except ProducerFenced:
            log.error("company %s: fenced by another producer instance; this instance stops polling it", worker.label,
                      extra={"company": worker.company.company_no})
            metrics.PRODUCER_ERRORS.labels(worker.label, "fenced").inc()
            worker.fenced = True
            return None
        except (TransientError, TerminalError) as exc:
            self.attempt += 1
            worker.last_failure = (time.time(), exc.reason)
            metrics.PRODUCER_ERRORS.labels(worker.label, exc.reason).inc()
            delay = self.backoff.delay(self.attempt)
            log.warning("company %s: poll failed (%s), retrying in %.1fs: %s", worker.label, exc.reason, delay, exc,
                        extra={"company": worker.company.company_no, "reason": exc.reason})
            return delay
        except Exception:  # noqa: BLE001 - a bug must not silently end a company's rounds
            self.attempt += 1
            worker.last_failure = (time.time(), "unexpected")
            metrics.PRODUCER_ERRORS.labels(worker.label, "unexpected").inc()
            log.exception("company %s: unexpected error", worker.label, extra={"company": worker.company.company_no})
            return self.backoff.delay(self.attempt)


class ProducerService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.workers: dict[int, CompanyWorker] = {}
        self._stop = threading.Event()
        self.live: LiveSettings | None = None

    def start(self) -> "ProducerService":
        ensure_topics(self.settings.kafka)
        read_ahead.prepare()  # (now, not in the first backlog's poll)
        # The operators' changes (`vb2po config set`) on top of the file, followed while running.
        self.live = follow_settings(self.settings)
        self.settings = self.live.settings
        # Initialise the transactional producers first: that fences an older instance and aborts
        # a transaction it left open (a SIGKILL mid-batch), which would otherwise hold back the
        # read_committed view of the state topic until the transaction timeout.
        # (side by side: with hundreds of companies, one after another would take minutes)
        with ThreadPoolExecutor(max_workers=min(START_THREADS, len(self.settings.companies)) or 1) as pool:
            made = pool.map(lambda c: (c.company_no,
                                       KafkaTransactionalPublisher(self.settings.kafka, transactional_id(c.company_no))),
                            self.settings.companies)
            publishers = dict(made)
        states = load_states(self.settings.kafka)
        for company in self.settings.companies:
            n = company.company_no
            publishers[n].settings_version = self.live.overrides.version
            self.workers[n] = CompanyWorker(self.settings, company, states.get(n, CompanyState(n)), publishers[n])
        self.live.subscribe(self.reconfigure)
        return self

    def reconfigure(self, settings: Settings, overrides: Overrides) -> None:
        """A LiveSettings listener: a newer settings version was stored."""
        self.settings = settings
        for worker in self.workers.values():
            worker.reconfigure(settings, overrides.version)

    def fetch_now(self, client: str | None = None) -> dict[int, PollOutcome]:
        """Poll now for one invoice client's company, or (client None) for every company."""
        if client is None:
            companies = sorted(self.workers)
        else:
            companies = [self.settings.company_of(self.settings.client(client))]
        return {n: self.workers[n].fetch_now() for n in companies}

    def run(self) -> None:
        """Run every company's rounds until `stop()`, on a pool of `producer.threads` threads."""
        p = self.settings.producer
        scheduler = Scheduler(min(p.threads, len(self.workers)) or 1, name="company-rounds")
        for worker in self.workers.values():
            # spread the companies' first rounds over a second instead of all at once
            spread = random.uniform(0, min(1.0, worker.poll_interval())) if len(self.workers) > 1 else 0
            scheduler.add(_Rounds(self, worker), spread)
        scheduler.run(self._stop)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        if self.live is not None:
            self.live.close()
        for worker in self.workers.values():
            worker.close()
