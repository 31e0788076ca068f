"""Hostile Visma rows, drawn by hypothesis: what a CustTr or Actor column can hold that no payment
or credit block can be, and valid payments vb2po must still refuse (an invoice PowerOffice does
not know, another customer's, a foreign currency on a NOK invoice).

Each `HostileRow` says what a correct vb2po does with it: `DEAD` (exactly one dead letter, from
the producer or the consumer), `SKIP` (not a payment: nothing published or posted) or `GOOD` (a
payment with odd but valid content: registered once and marked).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from hypothesis import strategies as st

from devstack.dataset import CustTrRow
from tests.fuzz.records import DEAD, SKIP
from vb2po.currencies import ISO_4217

GOOD = "good"
FIRST_JNO = 700_000  # hostile rows live above the dataset's journals
UNKNOWN_CURRENCIES = [n for n in range(1, 1000) if n not in ISO_4217]


@dataclass(frozen=True)
class HostileRow:
    row: CustTrRow
    expect: str
    kind: str
    columns: tuple[tuple[str, object], ...] = ()  # set after the insert, raw (e.g. Cur, CurAm, values beyond the type)


@dataclass(frozen=True)
class HostileActor:
    act_no: int
    cust_no: int
    columns: tuple[tuple[str, object], ...]
    kind: str


@dataclass(frozen=True)
class Ledger:
    """What the run's dataset holds, for drawing rows that mean something."""

    invoices: list[tuple[int, int]]  # (invoice number, customer)
    customers: list[int]
    today: int  # yyyymmdd
    now_ms: int


def base(ledger: Ledger, n: int, invoice: tuple[int, int], amount: str = "-10.00") -> CustTrRow:
    number, customer = invoice
    minute = ledger.now_ms // 60_000
    return CustTrRow(jno=FIRST_JNO + n, entno=1, cust_no=customer, vo_no=n, vo_dt=20260315, vo_tp=3,
                     txt="Innbetaling", am=Decimal(amount), invo_no=str(number), cur="NOK", due_dt=0,
                     cre_dt=ledger.today, cre_tm=(minute // 60) * 100 + minute % 60, ch_dt=ledger.today,
                     ch_tm=(minute // 60) * 100 + minute % 60, ch_tmms=ledger.now_ms)


TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)


def hostile_rows(ledger: Ledger) -> st.SearchStrategy:
    """(n -> HostileRow) builders: the run numbers them so each has its own key."""
    invoice = st.sampled_from(ledger.invoices)

    def row(kind: str, expect: str, **changes):
        def build(n: int, inv, extra: dict | None = None, columns: tuple = ()) -> HostileRow:
            return HostileRow(replace(base(ledger, n, inv), **{**changes, **(extra or {})}), expect, kind, columns)
        return build

    return st.one_of(
        # the producer cannot make an event of these
        st.builds(lambda d: (row("voucher date that is no date", DEAD), {"vo_dt": d}, ()),
                  st.sampled_from([20261032, 20260230, 20261300, 99999999])),  # (all after the lookback date)
        st.builds(lambda d: (row("voucher date far ahead", DEAD), {"vo_dt": d}, ()), st.integers(20290101, 20991231)),
        st.builds(lambda c: (row("no customer", DEAD), {"cust_no": c}, ()), st.integers(-2**31, 0)),
        st.builds(lambda c: (row("unknown currency", DEAD), {}, (("Cur", c),)), st.sampled_from(UNKNOWN_CURRENCIES)),
        st.builds(lambda a: (row("currency amount of the wrong sign", DEAD), {}, (("Cur", 978), ("CurAm", a))),
                  st.sampled_from([Decimal(0), Decimal("5.00")])),
        st.builds(lambda d: (row("more decimals than NOK has", DEAD), {"am": Decimal("-1") - d}, ()),
                  st.sampled_from([Decimal("0.001"), Decimal("0.000001"), Decimal("0.123456")])),
        st.builds(lambda a: (row("amount beyond DECIMAL(28,6)", DEAD), {}, (("Am", a),)), st.sampled_from([-1e30, -1e23])),
        st.builds(lambda t: (row("change time that is no time", DEAD), {}, (("ChTmms", t),)), st.integers(-10**6, -1)),
        # the consumer must not post these
        st.builds(lambda i: (row("invoice PowerOffice does not know", DEAD), {"invo_no": str(i)}, ()),
                  st.integers(950_000, 999_999)),
        st.builds(lambda t: (row("invoice number that is no number", DEAD), {"invo_no": t}, ()),
                  st.text(alphabet="ABC-/ x", min_size=1, max_size=20).filter(lambda t: t.strip() and not t.strip().isdigit())),
        st.builds(lambda: (row("no invoice number", DEAD), {"invo_no": ""}, ())),
        st.builds(lambda: (row("euro on a krone invoice", DEAD), {}, (("Cur", 978), ("CurAm", Decimal("-1.00"))))),
        st.builds(lambda: (row("another customer's invoice", DEAD, cust_no=-1), {}, ())),
        st.builds(lambda: (row("reversal of no payment", DEAD), {"am": Decimal("12345.67")}, ())),
        # not payments: nothing happens
        st.builds(lambda t: (row("another voucher type", SKIP), {"vo_tp": t}, ()), st.integers(4, 32767)),
        st.builds(lambda: (row("an invoice row", SKIP), {"vo_tp": 1, "am": Decimal("500.00")}, ())),
        st.builds(lambda: (row("before the lookback date", SKIP), {"vo_dt": 20250101}, ())),
        # odd but valid: registered once
        st.builds(lambda t: (row("odd text", GOOD), {"txt": t}, ()), TEXTS),
        st.builds(lambda: (row("one øre", GOOD), {"am": Decimal("-0.01")}, ())),
    ).flatmap(lambda spec: st.builds(lambda inv: (spec, inv), invoice))


def realise(drawn, n: int, ledger: Ledger) -> HostileRow:
    (build, extra, columns), inv = drawn
    hostile = build(n, inv, extra, columns)
    if hostile.row.cust_no == -1:  # another customer's invoice: a customer that is not the invoice's
        other = next(c for c in ledger.customers if c != inv[1])
        hostile = replace(hostile, row=replace(hostile.row, cust_no=other))
    return hostile


def hostile_actors() -> st.SearchStrategy:
    """(columns to set on a new Actor row, what is wrong): each makes one producer dead letter."""
    return st.one_of(
        st.builds(lambda v: (("CrSusp", v),), st.sampled_from([2, -1, 99, 2**31 - 1])).map(lambda c: (c, "credit block no 0/1")),
        st.builds(lambda d: (("ChDt", d),), st.sampled_from([20261032, 20261399])).map(lambda c: (c, "change date no date")),
        st.just((("CrLmt", -1e30),)).map(lambda c: (c, "credit limit beyond DECIMAL(28,6)")),
    )
