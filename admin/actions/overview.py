"""The overview of each invoice client (the console's first page, `GET /v1/overview`):

- the last successful poll of its Visma company (and the last failure, if later);
- payments registered today and this week (from the applied topic);
- open dead letters of its company, by reason;
- customers blocked for time registration (as last published by the producer);
- the open differences found by the last reconcile of the client (run since the producer started).

Each invoice client maps to one Visma company (the consumer routes by company), so what is
counted per company is the client's.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from typing import Iterable

from admin.actions.applied import AppliedView, Tally
from admin.actions.dead_letters import list_letters
from admin.actions.producer_view import ProducerView
from admin.actions.reconcile import ReconcileJob
from vb2po.settings import Settings

BLOCKED_SHOWN = 50


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts else None


def last_reconcile(jobs: Iterable[ReconcileJob], client: str) -> dict | None:
    """The newest finished reconcile that covered `client`, newest first in `jobs`."""
    for job in jobs:
        state = job.as_dict()
        if not state["finished"] or state["error"]:
            continue
        for result in state["results"]:
            if result["client"] == client:
                return {"reconcile_id": job.reconcile_id, "finished_at": state["finished_at"],
                        "requested_by": job.requested_by, "compared": result["compared"],
                        "open_differences": result["open_differences"],
                        "by_kind": {k: n for k, n in result["by_kind"].items() if n}}
    return None


def overview(settings: Settings, producer: ProducerView, applied: AppliedView, reconciles: Iterable[ReconcileJob], *,
             now: datetime, clients: Iterable[str]) -> dict:
    wanted = list(clients)
    open_letters: dict[int | None, Counter] = {}
    for entry in list_letters(settings.kafka, only_open=True) if wanted else ():
        open_letters.setdefault(entry.letter.company_no, Counter())[entry.letter.reason] += 1
    totals = applied.totals(now) if wanted else {}
    reconciles = list(reconciles)
    cards = []
    for name in wanted:
        company_no = settings.company_of(settings.client(name))
        runtime = producer.runtime(company_no)
        counted = totals.get(name, {})
        letters = open_letters.get(company_no, Counter())
        failure = runtime.last_failure
        cards.append({
            "client": name,
            "company_no": company_no,
            "last_poll_at": _iso(runtime.last_success_at),
            "last_poll_age_s": round(time.time() - runtime.last_success_at, 1) if runtime.last_success_at else None,
            "last_failure": {"at": _iso(failure[0]), "reason": failure[1]}
            if failure and (runtime.last_success_at is None or failure[0] > runtime.last_success_at) else None,
            "fenced": runtime.fenced,
            "registered_today": counted.get("today", Tally()).as_dict(),
            "registered_this_week": counted.get("week", Tally()).as_dict(),
            "dead_letters_open": sum(letters.values()),
            "dead_letters_by_reason": dict(sorted(letters.items())),
            "blocked_customers": len(runtime.blocked_customers),
            "blocked_customer_nos": list(runtime.blocked_customers[:BLOCKED_SHOWN]),
            "last_reconcile": last_reconcile(reconciles, name),
        })
    return {"at": now.isoformat(), "integration_enabled": settings.integration_enabled,
            "credit_block_sync": settings.credit_block_sync, "clients": cards}
