"""Status: per Visma company and invoice client, how the sync stands right now.

- last poll: when the producer last completed a round for the company, and its last failure;
- cursor lag: how old the oldest payment is that the producer has not published yet (0 when
  nothing waits), and how many wait; plus where the cursor stands;
- consumer lag: records the consumer group has yet to process, per topic;
- dead letters: open items (payments, rows; not redriven) per company and reason, each counted once;
- currently blocked customers: as last published by the producer.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

from admin.actions.dead_letters import list_letters
from admin.actions.kafka_view import KafkaView
from admin.actions.producer_view import ProducerView
from admin.actions.visma_read import waiting_payments
from producer.cursor import upper_bound
from vb2po.errors import TerminalError, TransientError
from vb2po.settings import Settings
from vb2po.visma.clock import visma_change_time
from vb2po.visma.company import open_company

WAITING_CAP = 1000  # payments counted behind the cursor before saying "1000 or more"
BLOCKED_SHOWN = 50


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts else None


def _change_time(ch_dt, ch_time, time_column: str, settings: Settings) -> datetime | None:
    try:
        return visma_change_time(ch_dt, ch_time, time_column, settings.zone)
    except (TypeError, ValueError):
        return None  # a row with an impossible change time: counted as waiting, its age unknown


def cursor_lag(settings: Settings, company_no: int, cursor, now: datetime) -> dict:
    """Oldest unpublished payment's age, and how many wait, read from Visma directly."""
    try:
        source = open_company(settings, settings.company(company_no))
    except (TransientError, TerminalError, ValueError) as exc:
        return {"error": f"visma: {exc}"}
    try:
        sel = source.selection
        upper = upper_bound(now.astimezone(settings.zone), 0, sel.time_column)
        rows = waiting_payments(source.db, sel, cursor, upper, WAITING_CAP)  # (JNo, EntNo, ChDt, time)
    except (TransientError, TerminalError) as exc:
        return {"error": f"visma: {exc}"}
    finally:
        source.db.close()
    changed_at = _change_time(cursor.ch_dt, cursor.ch_time, sel.time_column, settings) if cursor is not None else None
    oldest = _change_time(rows[0][2], rows[0][3], sel.time_column, settings) if rows else None
    return {
        "cursor": None if cursor is None else {"ch_dt": cursor.ch_dt, "ch_time": cursor.ch_time, "jno": cursor.jno,
                                               "entno": cursor.entno,
                                               "changed_at": changed_at.isoformat() if changed_at else None},
        "waiting": len(rows), "waiting_capped": len(rows) >= WAITING_CAP,
        "lag_s": round(max(0.0, (now - oldest).total_seconds()), 1) if oldest else 0.0,
    }


def gather_status(settings: Settings, producer: ProducerView, *, now: datetime | None = None) -> dict:
    now = now or datetime.now(timezone.utc)
    letters = list_letters(settings.kafka, only_open=True)
    # Open items, not messages: one payment that collected several letters (before vb2po remembered
    # what it dead-lettered, or one per hostile variant) counts once, under its latest reason.
    latest = {(e.letter.company_no, e.letter.source_key or e.letter_id): e for e in letters}
    by_company: dict[int | None, Counter] = {}
    for (company_no, _), entry in latest.items():
        by_company.setdefault(company_no, Counter())[entry.letter.reason] += 1
    companies = []
    for company in settings.companies:
        n = company.company_no
        runtime = producer.runtime(n)
        lag = cursor_lag(settings, n, runtime.cursor, now)
        dead = by_company.get(n, Counter())
        companies.append({
            "company_no": n,
            "invoice_clients": [c.name for c in settings.clients_of_company(n)],
            "last_poll_at": _iso(runtime.last_success_at),
            "last_poll_age_s": round(time.time() - runtime.last_success_at, 1) if runtime.last_success_at else None,
            "last_failure": {"at": _iso(runtime.last_failure[0]), "reason": runtime.last_failure[1]}
            if runtime.last_failure else None,
            "fenced": runtime.fenced,
            "cursor_lag": lag,
            "dead_letters_open": sum(dead.values()), "dead_letters_by_reason": dict(dead),
            "blocked_customers": len(runtime.blocked_customers),
            "blocked_customer_nos": list(runtime.blocked_customers[:BLOCKED_SHOWN]),
        })
    group = settings.kafka.consumer_group
    topics = {"payments": settings.kafka.topics.payments, "credit-blocks": settings.kafka.topics.credit_blocks}
    with KafkaView(settings.kafka) as view:
        info = view.group(group)
        pending = view.pending(group, topics.values())
    lag_by_topic = {name: sum(v for tp, v in pending.items() if tp.topic == topic) for name, topic in topics.items()}
    return {
        "at": now.isoformat(),
        "integration_enabled": settings.integration_enabled,
        "credit_block_sync": settings.credit_block_sync,
        "companies": companies,
        "invoice_clients": [{"name": c.name, "company_no": settings.company_of(c)} for c in settings.invoice_clients],
        "consumer": {"group": group, "state": info.state, "members": info.members, "lag": lag_by_topic,
                     "lag_by_partition": {f"{tp.topic}[{tp.partition}]": v for tp, v in sorted(pending.items())}},
        "dead_letters_open": len(latest),
        "dead_letter_messages_open": len(letters),
        "dead_letters_without_company": sum(by_company.get(None, Counter()).values()),
    }
