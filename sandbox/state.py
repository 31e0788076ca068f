"""Everything one sandbox instance holds: the clients' ledgers and the gateway's moving parts."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Sequence

from devstack.dataset import DatasetSpec
from sandbox.auth import TokenStore
from sandbox.faults import FaultInjector, FaultSettings
from sandbox.ledger import ClientLedger
from sandbox.ratelimit import SlidingWindowRateLimiter
from sandbox.seed import DEFAULT_LOCK_DATE, seed_client
from sandbox.stats import RequestStats

DEFAULT_APPLICATION_KEY = "sandbox-application-key"
DEFAULT_SUBSCRIPTION_KEY = "sandbox-subscription-key"


@dataclass(frozen=True)
class ClientSeed:
    """One PowerOffice client (company) to seed: its client key and the dataset it mirrors."""

    client_key: str
    spec: DatasetSpec = field(default_factory=DatasetSpec)
    lock_date: date | None = DEFAULT_LOCK_DATE

    @classmethod
    def parse(cls, text: str) -> "ClientSeed":
        """'CLIENT_KEY[:size[:seed]]', as given on the command line."""
        key, *rest = text.split(":")
        if not key or len(rest) > 2:
            raise ValueError(f"expected CLIENT_KEY[:size[:seed]], got {text!r}")
        defaults = DatasetSpec()
        size = int(rest[0]) if rest and rest[0] else defaults.size
        seed = int(rest[1]) if len(rest) > 1 and rest[1] else defaults.seed
        return cls(key, DatasetSpec(size=size, seed=seed))


@dataclass(frozen=True)
class SandboxConfig:
    application_key: str = DEFAULT_APPLICATION_KEY
    subscription_key: str = DEFAULT_SUBSCRIPTION_KEY
    rate_limit_per_second: int | None = 10  # None disables the limit
    token_lifetime_seconds: int = 1200
    faults: FaultSettings = field(default_factory=FaultSettings)
    # Refuse a second voucher with the same ExternalImportReference (409)? The public material
    # describes the reference as unique per client but not what a real server answers: the crash
    # and fault tests turn this off to prove vb2po needs no such refusal.
    unique_references: bool = True
    # Answer only the fields the public contract documents (see sandbox.wire.DOCUMENTED_FIELDS).
    documented_fields_only: bool = False


class SandboxState:
    def __init__(self, config: SandboxConfig, ledgers: dict[str, ClientLedger]):
        self.config = config
        self.ledgers = ledgers
        self._seeded_lock_dates = {key: ledger.lock_date for key, ledger in ledgers.items()}
        self.tokens = TokenStore(config.application_key, set(ledgers), config.token_lifetime_seconds)
        self.limiter = SlidingWindowRateLimiter(config.rate_limit_per_second)
        self.faults = FaultInjector(config.faults)
        self.documented_fields_only = config.documented_fields_only
        self.stats = RequestStats()

    @property
    def unique_references(self) -> bool:
        return all(ledger.unique_references for ledger in self.ledgers.values())

    def set_unique_references(self, on: bool) -> None:
        for ledger in self.ledgers.values():
            ledger.unique_references = on

    @classmethod
    def seeded(cls, config: SandboxConfig, clients: Sequence[ClientSeed]) -> "SandboxState":
        if not clients:
            raise ValueError("the sandbox needs at least one client")
        keys = [c.client_key for c in clients]
        if len(set(keys)) != len(keys):
            raise ValueError(f"client keys must be unique: {keys}")
        state = cls(config, {c.client_key: seed_client(c.client_key, c.spec, c.lock_date) for c in clients})
        state.set_unique_references(config.unique_references)
        return state

    def reset_settings(self) -> None:
        """Back to how the sandbox started: faults, rate limit, token lifetime, lock dates.

        Ledger contents (vouchers, balances) and issued tokens are kept.
        """
        self.faults.configure(self.config.faults)
        self.limiter.configure(self.config.rate_limit_per_second)
        self.set_unique_references(self.config.unique_references)
        self.documented_fields_only = self.config.documented_fields_only
        self.tokens.lifetime_s = self.config.token_lifetime_seconds
        for key, lock_date in self._seeded_lock_dates.items():
            self.ledgers[key].set_lock_date(lock_date)
