"""What operator actions need from the running producer, as a Protocol with its fake beside it.

Fetch now and the per-company status live in the producer process: a second producer for a
company would fence the running one (Kafka transactional id), so nothing else may poll.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from producer.payments import PollOutcome
from vb2po.visma.queries import Position

if TYPE_CHECKING:
    from producer.service import ProducerService


@dataclass(frozen=True)
class CompanyRuntime:
    company_no: int
    last_success_at: float | None
    last_failure: tuple[float, str] | None
    fenced: bool
    cursor: Position | None
    blocked_customers: tuple[int, ...]
    time_column: str | None  # ChTmms or ChTm, once the company was opened


class ProducerView(Protocol):
    def fetch(self, company_no: int) -> PollOutcome: ...
    def runtime(self, company_no: int) -> CompanyRuntime: ...


class RunningProducer:
    """The adapter over the producer service this process runs."""

    def __init__(self, service: "ProducerService"):
        self.service = service

    def fetch(self, company_no: int) -> PollOutcome:
        return self.service.workers[company_no].fetch_now()

    def runtime(self, company_no: int) -> CompanyRuntime:
        worker = self.service.workers[company_no]
        payments, credit = worker.payments, worker.credit_blocks
        cursor = payments.state.payments_cursor if payments is not None else worker.initial_state.payments_cursor
        blocks = credit.blocks if credit is not None else worker.initial_state.blocks
        return CompanyRuntime(
            company_no=company_no, last_success_at=worker.last_success_at, last_failure=worker.last_failure,
            fenced=worker.fenced, cursor=cursor,
            blocked_customers=tuple(sorted(no for no, b in dict(blocks).items() if b.blocked)),
            time_column=payments.source.selection.time_column if payments is not None else None,
        )


@dataclass
class FakeProducer:
    outcomes: dict[int, list[PollOutcome]] = field(default_factory=dict)
    runtimes: dict[int, CompanyRuntime] = field(default_factory=dict)
    fetched: list[int] = field(default_factory=list)

    def fetch(self, company_no: int) -> PollOutcome:
        self.fetched.append(company_no)
        queue = self.outcomes.get(company_no) or [PollOutcome()]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def runtime(self, company_no: int) -> CompanyRuntime:
        return self.runtimes.get(company_no) or CompanyRuntime(company_no, None, None, False, None, (), None)
