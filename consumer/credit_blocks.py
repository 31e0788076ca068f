"""Applying credit-block events: a customer blocked in Visma gets time tracking denied on
every one of its PowerOffice projects; when the block is lifted, only the projects this
service denied get it back. Safe to repeat: each step checks the current state first."""
from __future__ import annotations

from collections.abc import Mapping

from consumer.denied_projects import DeniedProjectsStore
from consumer.outcomes import ALREADY_APPLIED, APPLIED, IGNORED, SUPERSEDED
from consumer.routing import Route, route_for
from consumer.visma import VismaPayments
from schemas.events import CreditBlockEvent
from vb2po import metrics
from vb2po.errors import TerminalError
from vb2po.poweroffice.api import PowerOfficeApi


class IgnoredCreditBlocks:
    """The credit-block setting is off: events are consumed, counted and otherwise ignored."""

    def apply(self, event: CreditBlockEvent) -> str:
        metrics.EVENTS_SKIPPED.labels("credit_block", "sync_off").inc()
        return IGNORED


class CreditBlockApplier:
    def __init__(self, routes: dict[int, Route], apis: Mapping[int, PowerOfficeApi], denied: DeniedProjectsStore,
                 visma: Mapping[int, VismaPayments] | None = None):
        self.routes = routes
        self.apis = apis
        self.denied = denied
        self.visma = visma  # None: trust the event (unit tests of the project logic)

    def apply(self, event: CreditBlockEvent) -> str:
        p = event.payload
        route_for(self.routes, p.company_no)  # unknown company: terminal, dead-lettered
        if self.visma is not None and not self._as_visma_says(self.visma, p):
            metrics.EVENTS_SKIPPED.labels("credit_block", SUPERSEDED).inc()
            return SUPERSEDED
        api = self.apis[p.company_no]
        self.denied.sync()  # another instance may have owned this customer until a rebalance
        ours = self.denied.get(p.company_no, p.customer_no)
        outcome = self._block(api, p.company_no, p.customer_no, ours) if p.blocked else \
            self._lift(api, p.company_no, p.customer_no, ours)
        metrics.BLOCKED_CUSTOMERS.labels(str(p.company_no)).set(self.denied.blocked_customers(p.company_no))
        if outcome == APPLIED:
            metrics.EVENTS_APPLIED.labels("credit_block").inc()
        else:
            metrics.EVENTS_SKIPPED.labels("credit_block", outcome).inc()
        return outcome

    def _as_visma_says(self, visma: Mapping[int, VismaPayments], p) -> bool:
        """Is the customer, by Visma's Actor row, (still) as the event says? No such row, or one of
        another customer, is a dead letter; a block Visma has lifted since (or the reverse) is
        superseded: the newer event applies the current state."""
        found = visma[p.company_no].actor(p.actor_no)
        if found is None:
            raise TerminalError(f"Visma company {p.company_no} holds no customer ActNo={p.actor_no}: nothing is changed "
                                "in PowerOffice for a customer Visma does not hold", reason="not_in_visma")
        customer_no, blocked = found
        if customer_no != p.customer_no or blocked is None:
            raise TerminalError(f"the event says ActNo={p.actor_no} is customer {p.customer_no}"
                                + (f"; Visma says customer {customer_no}" if customer_no != p.customer_no else
                                   "; Visma's credit block of that row is no 0 or 1"), reason="differs_from_visma")
        return blocked == p.blocked

    def _block(self, api: PowerOfficeApi, company_no: int, customer_no: int, ours: frozenset[int]) -> str:
        open_projects = [pr.id for pr in api.list_projects([customer_no]) if not pr.deny_time_tracking]
        if not open_projects:
            return ALREADY_APPLIED
        # Remember first, then deny: a crash in between leaves a project we will deny on retry,
        # never one we denied and forgot (it would stay denied after the lift).
        wanted = ours | frozenset(open_projects)
        if wanted != ours:
            self.denied.put(company_no, customer_no, wanted)
        for project_id in open_projects:
            api.set_deny_time_tracking(project_id, True)
        return APPLIED

    def _lift(self, api: PowerOfficeApi, company_no: int, customer_no: int, ours: frozenset[int]) -> str:
        if not ours:
            return ALREADY_APPLIED
        current = {pr.id: pr for pr in api.list_projects([customer_no])}
        for project_id in sorted(ours):
            if project_id in current and current[project_id].deny_time_tracking:
                api.set_deny_time_tracking(project_id, False)
        self.denied.put(company_no, customer_no, frozenset())
        return APPLIED
