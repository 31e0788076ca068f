"""The producer process: one poll loop per Visma company, each with its own cursor and
transactional id, so a slow or failing company never holds up another."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from producer.company import open_company
from producer.payments import PaymentPoller, PollOutcome
from producer.publisher import KafkaTransactionalPublisher, ProducerFenced
from producer.state import CompanyState, load_states
from vb2po import metrics
from vb2po.errors import TerminalError, TransientError
from vb2po.kafka.topics import ensure_topics
from vb2po.retry import Backoff
from vb2po.settings import Settings

log = logging.getLogger(__name__)


def transactional_id(company_no: int) -> str:
    return f"vb2po-producer-company-{company_no}"


class ProducerService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.pollers: dict[int, PaymentPoller] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "ProducerService":
        ensure_topics(self.settings.kafka)
        states = load_states(self.settings.kafka)
        for company in self.settings.companies:
            n = company.company_no
            source = open_company(self.settings, company)
            publisher = KafkaTransactionalPublisher(self.settings.kafka, transactional_id(n))
            self.pollers[n] = PaymentPoller(
                source, publisher, self.settings.kafka.topics, self.settings.zone,
                states.get(n, CompanyState(n)),
                page_size=self.settings.producer.page_size, settle_s=self.settings.producer.settle_s,
            )
            self._locks[n] = threading.Lock()
            log.info("company %s: resuming from %s", n, self.pollers[n].state.payments_cursor)
        return self

    def poll_company(self, company_no: int) -> PollOutcome:
        """One poll of one company now (also the operator's "fetch now")."""
        poller = self.pollers[company_no]
        label = str(company_no)
        with self._locks[company_no], metrics.POLL_DURATION.labels(label).time():
            outcome = poller.poll_once()
        metrics.ROWS_READ.labels(label).inc(outcome.rows_read)
        metrics.EVENTS_PUBLISHED.labels(label, "payment").inc(outcome.published)
        metrics.LAST_POLL_SUCCESS.labels(label).set(time.time())
        if outcome.newest_change is not None:
            metrics.CURSOR_LAG.labels(label).set((datetime.now(timezone.utc) - outcome.newest_change).total_seconds())
        return outcome

    def poll_all(self) -> dict[int, PollOutcome]:
        return {n: self.poll_company(n) for n in self.pollers}

    def run(self) -> None:
        """Poll every company on its schedule until `stop()`."""
        for n in self.pollers:
            thread = threading.Thread(target=self._loop, args=(n,), name=f"poll-company-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for thread in self._threads:
            while thread.is_alive():
                thread.join(timeout=0.5)

    def _loop(self, company_no: int) -> None:
        backoff, attempt = Backoff(base_s=0.5, cap_s=30), 0
        while not self._stop.is_set():
            try:
                outcome = self.poll_company(company_no)
                attempt = 0
                if outcome.published or outcome.bad_rows:
                    log.info("company %s: published %s events, %s bad rows", company_no, outcome.published, outcome.bad_rows)
                self._stop.wait(self.settings.producer.poll_interval_s)
            except ProducerFenced:
                log.error("company %s: fenced by another producer instance; stopping this company", company_no)
                metrics.PRODUCER_ERRORS.labels(str(company_no), "fenced").inc()
                return
            except (TransientError, TerminalError) as exc:
                attempt += 1
                metrics.PRODUCER_ERRORS.labels(str(company_no), exc.reason).inc()
                delay = backoff.delay(attempt)
                log.warning("company %s: poll failed (%s), retrying in %.1fs: %s", company_no, exc.reason, delay, exc)
                self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()
        for poller in self.pollers.values():
            poller.publisher.close()
            poller.source.db.close()
