"""Fetch now: poll one invoice client's Visma company (or every client's) immediately, and
follow the published payments until the consumers have applied them.

"Applied" is read where it is true: the processed marker in the Visma row, which the consumer
sets only after PowerOffice has the payment. A payment the consumer dead-lettered instead is
found in the dead-letter topic by its Visma key. Both are checked on each progress request.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from admin.actions.errors import Conflict, NotFound, Unavailable
from admin.actions.jobs import new_id
from admin.actions.kafka_view import KafkaView
from admin.actions.producer_view import ProducerView
from admin.actions.visma_read import marked_keys
from producer.publisher import ProducerFenced
from vb2po.errors import TerminalError, TransientError
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import Settings
from vb2po.visma.company import open_company

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (JNo, EntNo)


def companies_to_fetch(settings: Settings, client: str | None) -> dict[int, list[str]]:
    """Visma company -> the invoice clients it serves, for one client or for all."""
    if client is not None:
        try:
            found = settings.client(client)
        except KeyError as exc:
            raise NotFound(str(exc).strip('"'), "`vb2po status` lists the configured invoice clients") from None
        return {settings.company_of(found): [found.name]}
    out: dict[int, list[str]] = {}
    for c in settings.invoice_clients:
        out.setdefault(settings.company_of(c), []).append(c.name)
    return dict(sorted(out.items()))


def parse_source_key(key: str | None) -> Key | None:
    """'JNo=12;EntNo=3' -> (12, 3)."""
    try:
        parts = dict(p.split("=", 1) for p in (key or "").split(";"))
        return int(parts["JNo"]), int(parts["EntNo"])
    except (ValueError, KeyError):
        return None


@dataclass
class CompanyFetch:
    company_no: int
    clients: list[str]
    published: int = 0
    bad_rows: int = 0
    rows_read: int = 0
    error: str | None = None
    keys: tuple[Key, ...] = ()

    def as_dict(self) -> dict:
        return {"company_no": self.company_no, "clients": self.clients, "published": self.published,
                "bad_rows": self.bad_rows, "rows_read": self.rows_read, "error": self.error}


@dataclass
class FetchJob:
    fetch_id: str
    scope: str  # "client:<name>" or "all"
    requested_by: str
    companies: list[CompanyFetch]
    dead_letter_since: dict[int, int]
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    applied: dict[int, set[Key]] = field(default_factory=dict)
    dead_lettered: dict[int, dict[Key, str]] = field(default_factory=dict)
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def published(self) -> int:
        return sum(c.published for c in self.companies)

    def pending(self, company: CompanyFetch) -> set[Key]:
        return (set(company.keys) - self.applied.get(company.company_no, set())
                - set(self.dead_lettered.get(company.company_no, {})))

    def progress(self) -> dict:
        applied = sum(len(v) for v in self.applied.values())
        dead = sum(len(v) for v in self.dead_lettered.values())
        pending = sum(len(self.pending(c)) for c in self.companies)
        return {
            "published": self.published, "applied": applied, "dead_lettered": dead, "pending": pending,
            "done": pending == 0, "error": self.last_error,
            "dead_letters": [{"company_no": n, "source_key": f"JNo={k[0]};EntNo={k[1]}", "reason": r}
                             for n, letters in sorted(self.dead_lettered.items()) for k, r in sorted(letters.items())],
        }

    def as_dict(self) -> dict:
        return {
            "fetch_id": self.fetch_id, "scope": self.scope, "requested_by": self.requested_by,
            "started_at": self.started_at, "published": self.published,
            "bad_rows": sum(c.bad_rows for c in self.companies),
            "companies": [c.as_dict() for c in self.companies], "progress": self.progress(),
        }

    def refresh(self, settings: Settings) -> dict:
        """Look again at the Visma markers and the dead letters; returns `progress()`."""
        with self._lock:
            self.last_error = None
            try:
                self._refresh_dead_letters(settings)
                for company in self.companies:
                    if self.pending(company):
                        self._refresh_markers(settings, company)
            except (TransientError, TerminalError) as exc:
                self.last_error = f"could not check progress: {exc}"
                log.warning("fetch %s: %s", self.fetch_id, self.last_error)
            return self.progress()

    def _refresh_markers(self, settings: Settings, company: CompanyFetch) -> None:
        source = open_company(settings, settings.company(company.company_no))
        try:
            marked = marked_keys(source.db, source.selection, self.pending(company))
        finally:
            source.db.close()
        self.applied.setdefault(company.company_no, set()).update(marked)

    def _refresh_dead_letters(self, settings: Settings) -> None:
        by_company = {c.company_no: c for c in self.companies if self.pending(c)}
        if not by_company:
            return
        with KafkaView(settings.kafka) as view:
            records, ends = view.read_topic(settings.kafka.topics.dead_letters, since=self.dead_letter_since)
        self.dead_letter_since = ends or self.dead_letter_since
        for record in records:
            try:
                letter = DeadLetter.decode(record.value)
            except (ValueError, TypeError):
                continue
            company = by_company.get(letter.company_no) if letter.company_no is not None else None
            key = parse_source_key(letter.source_key)
            if company is not None and key in self.pending(company):
                self.dead_lettered.setdefault(company.company_no, {})[key] = letter.reason


def start_fetch(settings: Settings, producer: ProducerView, client: str | None, requested_by: str) -> FetchJob:
    """Poll now; returns the job with the counts published (progress is followed separately)."""
    if not settings.integration_enabled:
        raise Conflict("the integration is switched off (integration_enabled: false)",
                       "switch it on: `vb2po config set integration_enabled=true` (or in the settings file)")
    targets = companies_to_fetch(settings, client)
    with KafkaView(settings.kafka) as view:  # dead letters from here on can only be about this fetch or later
        ends = view.end_offsets(view.partitions(settings.kafka.topics.dead_letters))
    job = FetchJob(new_id("fetch"), f"client:{client}" if client else "all", requested_by,
                   [CompanyFetch(n, names) for n, names in targets.items()],
                   {tp.partition: offset for tp, offset in ends.items()})
    for company in job.companies:
        started = time.monotonic()
        try:
            outcome = producer.fetch(company.company_no)
        except ProducerFenced:
            company.error = ("fenced: another producer instance owns this company now; this one no longer polls it "
                             "(restart this producer, or stop the other)")
            continue
        except (TransientError, TerminalError) as exc:
            company.error = f"{exc.reason}: {exc}"
            continue
        company.published, company.bad_rows, company.rows_read = outcome.published, outcome.bad_rows, outcome.rows_read
        company.keys = tuple(outcome.published_keys)
        log.info("fetch %s by %s: company %s: %s published, %s bad rows in %.2fs", job.fetch_id, requested_by,
                 company.company_no, outcome.published, outcome.bad_rows, time.monotonic() - started)
    if all(c.error for c in job.companies):
        raise Unavailable("fetch failed for " + "; ".join(f"company {c.company_no}: {c.error}" for c in job.companies),
                          "`vb2po status` shows each company's last poll; `vb2po config check` tests the connections")
    return job
