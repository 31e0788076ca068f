"""Credit blocks are applied only as Visma's Actor row says: a customer Visma does not hold, or
holds as another customer, is a dead letter; a block Visma has lifted since is superseded."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from consumer.credit_blocks import CreditBlockApplier
from consumer.denied_projects import FakeDeniedProjectsStore
from consumer.outcomes import ALREADY_APPLIED, APPLIED, SUPERSEDED
from consumer.routing import Route
from consumer.visma import FakeVismaPayments
from devstack.dataset import DatasetSpec, customers, projects
from schemas.events import CreditBlockEvent, CreditBlockPayload, Source, credit_block_event_id
from tests.fakes.poweroffice import FakePowerOffice
from tests.unit.test_payment_applier import BOOK, RULE
from vb2po.errors import TerminalError
from vb2po.settings import InvoiceClientSettings

SPEC = DatasetSpec(size=60, seed=3)
NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def event(customer_no: int, actor_no: int, blocked: bool, sequence: int = 1) -> CreditBlockEvent:
    return CreditBlockEvent(
        event_id=credit_block_event_id(1, customer_no, sequence, blocked), schema_version=2,
        source=Source(company_no=1, table="Actor", key=f"ActNo={actor_no}"), occurred_at=NOW, produced_at=NOW,
        payload=CreditBlockPayload(company_no=1, customer_no=customer_no, actor_no=actor_no, blocked=blocked,
                                   credit_limit=Decimal("1000"), sequence=sequence))


@pytest.fixture
def world():
    customer = next(c for c in customers(SPEC) if any(p.cust_no == c.cust_no and not p.deny_time_tracking
                                                      for p in projects(SPEC)))
    po = FakePowerOffice.seeded(SPEC)
    visma = FakeVismaPayments([], RULE, BOOK, actors={customer.act_no: (customer.cust_no, 1)})
    route = Route(1, InvoiceClientSettings(name="demo", client_key="k"))
    return CreditBlockApplier({1: route}, {1: po}, FakeDeniedProjectsStore(), {1: visma}), po, visma, customer


def denied(po, customer_no: int) -> set[int]:
    return {p.id for p in po.list_projects([customer_no]) if p.deny_time_tracking}


def test_a_block_visma_holds_is_applied_once(world):
    applier, po, _, customer = world
    assert applier.apply(event(customer.cust_no, customer.act_no, True)) == APPLIED
    assert denied(po, customer.cust_no)
    assert applier.apply(event(customer.cust_no, customer.act_no, True)) == ALREADY_APPLIED


def test_a_block_visma_has_lifted_since_is_superseded(world):
    applier, po, visma, customer = world
    before = denied(po, customer.cust_no)
    visma.actors[customer.act_no] = (customer.cust_no, 0)
    assert applier.apply(event(customer.cust_no, customer.act_no, True)) == SUPERSEDED
    assert denied(po, customer.cust_no) == before


@pytest.mark.parametrize("actor, customer_delta, reason", [(999_999, 0, "not_in_visma"), (None, 1, "differs_from_visma")])
def test_a_customer_visma_does_not_hold_is_dead_lettered_and_nothing_changes(world, actor, customer_delta, reason):
    applier, po, _, customer = world
    before = denied(po, customer.cust_no + customer_delta)
    with pytest.raises(TerminalError) as err:
        applier.apply(event(customer.cust_no + customer_delta, actor or customer.act_no, True))
    assert err.value.reason == reason
    assert denied(po, customer.cust_no + customer_delta) == before
