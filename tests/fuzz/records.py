"""Hostile records for the payments and credit-blocks topics, drawn by hypothesis.

Each `Case` carries what a correct vb2po does with it: `DEAD` (exactly one dead letter for its
content), `SKIP` (no letter, nothing posted: a replay of what Visma holds, a credit block Visma
has lifted since) or, for the genuine events of good rows, nothing of its own to check (the row's
payment is counted once by the run's oracle). Valid-looking events are built from the rows the
run put into Visma, so they get past the schema and are caught where they must be: by the
comparison with Visma.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from hypothesis import strategies as st

from schemas.events import credit_block_event_id, customer_key, payment_event_id

DEAD, SKIP = "dead", "skip"
NOW = datetime(2026, 11, 30, 8, tzinfo=timezone.utc).isoformat()


@dataclass(frozen=True)
class Case:
    topic: str  # "payments" or "credit_blocks"
    key: bytes | None
    value: bytes | None
    expect: str  # DEAD or SKIP
    kind: str  # what was drawn, for the report


@dataclass(frozen=True)
class RowFacts:
    """What a good CustTr row says, as a payment event's payload does."""

    jno: int
    entno: int
    customer_no: int
    invoice_no: str
    amount: str
    voucher_no: int
    voucher_date: str
    text: str


@dataclass(frozen=True)
class ActorFacts:
    act_no: int
    customer_no: int
    blocked: bool


def payment_event(f: RowFacts, company_no: int = 1, **changes: Any) -> dict:
    payload = {"company_no": company_no, "jno": f.jno, "entno": f.entno, "customer_no": f.customer_no,
               "invoice_no": f.invoice_no, "kind": "payment", "amount": f.amount, "currency": "NOK",
               "voucher_no": f.voucher_no, "voucher_date": f.voucher_date, "text": f.text}
    payload.update(changes)
    return {"event_id": str(payment_event_id(payload["company_no"], payload["jno"], payload["entno"])),
            "schema_version": 2, "event_type": "visma.payment.received",
            "source": {"company_no": payload["company_no"], "table": "CustTr",
                       "key": f"JNo={payload['jno']};EntNo={payload['entno']}"},
            "occurred_at": NOW, "produced_at": NOW, "payload": payload}


def credit_block_event(a: ActorFacts, *, blocked: bool | None = None, company_no: int = 1, sequence: int = 1) -> dict:
    state = a.blocked if blocked is None else blocked
    return {"event_id": str(credit_block_event_id(company_no, a.customer_no, sequence, state)), "schema_version": 2,
            "event_type": "visma.customer.credit_block",
            "source": {"company_no": company_no, "table": "Actor", "key": f"ActNo={a.act_no}"},
            "occurred_at": NOW, "produced_at": NOW,
            "payload": {"company_no": company_no, "customer_no": a.customer_no, "actor_no": a.act_no, "blocked": state,
                        "credit_limit": "1000.00", "sequence": sequence, "reasserted": False}}


def _bytes(event: dict) -> bytes:
    return json.dumps(event).encode()


def _set(path: str, value: Any) -> Callable[[dict], dict]:
    """A mutation: put `value` at a dotted path (a value of `...` deletes it)."""
    def mutate(event: dict) -> dict:
        event = json.loads(json.dumps(event))
        *parents, last = path.split(".")
        node = event
        for part in parents:
            node = node[part]
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
        return event
    return mutate


# Each breaks one rule an event must keep: bounds from the Visma columns, the envelope agreeing
# with the payload, known versions, allowed currencies.
PAYMENT_MUTATIONS: list[tuple[str, Callable[[dict], dict]]] = [
    ("amount 1e30", _set("payload.amount", "1e30")),
    ("amount negative", _set("payload.amount", "-5.00")),
    ("amount NaN", _set("payload.amount", "NaN")),
    ("amount 7 decimals", _set("payload.amount", "1.0000001")),
    ("voucher date 9999-12-31", _set("payload.voucher_date", "9999-12-31")),
    ("voucher date 2026-02-30", _set("payload.voucher_date", "2026-02-30")),
    ("voucher date 1999", _set("payload.voucher_date", "1999-12-31")),
    ("text 70 KB", _set("payload.text", "x" * 70_000)),
    ("text 700 characters", _set("payload.text", "ø" * 700)),
    ("customer 0", _set("payload.customer_no", 0)),
    ("customer 2^40", _set("payload.customer_no", 2**40)),
    ("jno 2^40", _set("payload.jno", 2**40)),
    ("schema_version 99", _set("schema_version", 99)),
    ("schema_version 0", _set("schema_version", 0)),
    ("schema_version -1", _set("schema_version", -1)),
    ("schema_version missing", _set("schema_version", ...)),
    ("source company differs", _set("source.company_no", 2)),
    ("source key differs", _set("source.key", "JNo=1;EntNo=1")),
    ("event id differs", lambda e: _set("event_id", str(uuid.uuid4()))(e)),
    ("currency USD without company amount", _set("payload.currency", "USD")),
    ("currency lower case", _set("payload.currency", "nok")),
    ("currency unknown", _set("payload.currency", "XYZ")),
    ("kind refund", _set("payload.kind", "refund")),
    ("occurred 1900", _set("occurred_at", "1900-01-01T00:00:00+00:00")),
    ("table Actor", _set("source.table", "Actor")),
    ("company amount without currency", _set("payload.company_amount", "10.00")),
    ("invoice number 30 characters", _set("payload.invoice_no", "1" * 30)),
    ("payload missing", _set("payload", ...)),
]

CREDIT_MUTATIONS: list[tuple[str, Callable[[dict], dict]]] = [
    ("sequence 0", _set("payload.sequence", 0)),
    ("credit limit 1e30", _set("payload.credit_limit", "1e30")),
    ("blocked maybe", _set("payload.blocked", "maybe")),
    ("actor key differs", _set("source.key", "ActNo=-1")),
    ("event id differs", lambda e: _set("event_id", str(uuid.uuid4()))(e)),
    ("schema_version 3", _set("schema_version", 3)),
    ("customer -1", _set("payload.customer_no", -1)),
]

json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                               st.dictionaries(st.text(max_size=10), inner, max_size=5)),
                           max_leaves=20)
keys = st.one_of(st.none(), st.binary(max_size=12), st.sampled_from([b"1:10000", b"1:10001", b"", b"\xff"]))


def cases(rows: list[RowFacts], actors: list[ActorFacts], other_customers: list[int]) -> st.SearchStrategy[Case]:
    """Every kind of hostile record, weighted so each is drawn often."""
    row = st.sampled_from(rows)
    actor = st.sampled_from(actors)

    def key_of(f: RowFacts) -> bytes:
        return customer_key(1, f.customer_no)

    garbage = st.builds(lambda v, k: Case("payments", k, v, DEAD, "bytes"), st.binary(max_size=300), keys)
    junk_json = st.builds(lambda v, k: Case("payments", k, json.dumps(v).encode(), DEAD, "json"), json_values, keys)
    tombstone = st.builds(lambda k: Case("payments", k, None, DEAD, "tombstone"), st.binary(min_size=1, max_size=12))
    mutated = st.builds(lambda f, m: Case("payments", key_of(f), _bytes(m[1](payment_event(f))), DEAD, m[0]),
                        row, st.sampled_from(PAYMENT_MUTATIONS))
    differs = st.builds(
        lambda f, which, cents, other: Case("payments", key_of(f), _bytes(_differing(f, which, cents, other)), DEAD,
                                            "differs from Visma"),
        row, st.integers(0, 2), st.integers(1, 99_999), st.sampled_from(other_customers))
    not_in_visma = st.builds(
        lambda f, jno, entno: Case("payments", key_of(f), _bytes(payment_event(f, jno=jno, entno=entno)), DEAD,
                                   "not in Visma"),
        row, st.integers(800_000, 2**31 - 1), st.integers(1, 1000))
    other_company = st.builds(
        lambda f: Case("payments", customer_key(7, f.customer_no), _bytes(payment_event(f, company_no=7)), DEAD,
                       "company without invoice client"), row)
    replay = st.builds(lambda f: Case("payments", key_of(f), _bytes(payment_event(f)), SKIP, "replay"), row)
    credit_garbage = st.builds(lambda v, k: Case("credit_blocks", k, v, DEAD, "credit bytes"), st.binary(max_size=200), keys)
    credit_mutated = st.builds(
        lambda a, m: Case("credit_blocks", customer_key(1, a.customer_no), _bytes(m[1](credit_block_event(a))), DEAD,
                          "credit " + m[0]), actor, st.sampled_from(CREDIT_MUTATIONS))
    credit_unknown = st.builds(
        lambda a, act_no: Case("credit_blocks", customer_key(1, a.customer_no),
                               _bytes(credit_block_event(ActorFacts(act_no, a.customer_no, True))), DEAD,
                               "credit actor not in Visma"), actor, st.integers(500_000, 2**31 - 1))
    credit_stale = st.builds(
        lambda a, seq: Case("credit_blocks", customer_key(1, a.customer_no),
                            _bytes(credit_block_event(a, blocked=not a.blocked, sequence=seq)), SKIP,
                            "credit block Visma does not hold"), actor, st.integers(50, 10_000))
    return st.one_of(garbage, junk_json, tombstone, mutated, mutated, differs, not_in_visma, other_company, replay,
                     credit_garbage, credit_mutated, credit_unknown, credit_stale)


def _differing(f: RowFacts, which: int, cents: int, other_customer: int) -> dict:
    """A valid event for the row that says one thing the row does not: the amount, the customer or the invoice."""
    if which == 0:
        whole, _, fraction = f.amount.partition(".")
        total = int(whole) * 100 + int((fraction + "00")[:2]) + cents
        return payment_event(f, amount=f"{total // 100}.{total % 100:02d}")
    if which == 1:
        return payment_event(f, customer_no=other_customer if other_customer != f.customer_no else f.customer_no + 1)
    return payment_event(f, invoice_no=str(900_000 + cents))
