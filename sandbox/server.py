"""Run the sandbox on 127.0.0.1: in a background thread for tests, or as `vb2po sandbox`.

The listening socket is bound before uvicorn starts (port 0 = the OS picks a free one),
so the port is known up front and nothing races for it (`vb2po.http_server`).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date
from typing import Sequence

from sandbox.app import create_app
from sandbox.control_client import SandboxControl
from sandbox.seed import BANK_ACCOUNT_NO, DEFAULT_LOCK_DATE, gl_account_id
from sandbox.state import (
    DEFAULT_APPLICATION_KEY,
    DEFAULT_SUBSCRIPTION_KEY,
    ClientSeed,
    SandboxConfig,
    SandboxState,
)
from vb2po.http_server import BackgroundServer


class SandboxServer:
    """`with SandboxServer([ClientSeed("client-demo")]) as sandbox: ... sandbox.api_url ...`"""

    def __init__(self, clients: Sequence[ClientSeed] = (), config: SandboxConfig | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 60.0):
        self.config = config or SandboxConfig()
        self.state = SandboxState.seeded(self.config, list(clients) or [ClientSeed("client-demo")])
        self._host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._http: BackgroundServer | None = None
        self._port: int | None = None
        self._control: SandboxControl | None = None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the sandbox is not running")
        return f"http://{self._host}:{self._port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/v2"

    @property
    def token_url(self) -> str:
        return self.base_url + "/OAuth/Token"

    @property
    def application_key(self) -> str:
        return self.config.application_key

    @property
    def subscription_key(self) -> str:
        return self.config.subscription_key

    @property
    def client_keys(self) -> list[str]:
        return list(self.state.ledgers)

    @property
    def control(self) -> SandboxControl:
        if self._control is None:
            self._control = SandboxControl(self.base_url)
        return self._control

    def bank_account_id(self, client_key: str, account_no: int = BANK_ACCOUNT_NO) -> int:
        """The Id of a general-ledger account (what a voucher line's AccountId takes)."""
        return self.state.ledgers[client_key].summary().accounts.get(account_no, gl_account_id(account_no))

    def start(self) -> "SandboxServer":
        self._http = BackgroundServer(create_app(self.state), self._host, self._requested_port, name="sandbox",
                                      startup_timeout_s=self._startup_timeout_s, timeout_keep_alive=30, backlog=2048)
        self._http.start()
        self._port = self._http.port
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._http is not None:
            self._http.stop(timeout_s)
            self._http = None

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vb2po sandbox", description="Run the local PowerOffice Go v2 sandbox.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8090, help="port (0 = any free port)")
    p.add_argument("--application-key", default=DEFAULT_APPLICATION_KEY)
    p.add_argument("--subscription-key", default=DEFAULT_SUBSCRIPTION_KEY)
    p.add_argument("--client", action="append", type=ClientSeed.parse, metavar="CLIENT_KEY[:size[:seed]]",
                   help="a PowerOffice client seeded from the dataset; repeatable (default: client-demo)")
    p.add_argument("--lock-date", type=date.fromisoformat, default=DEFAULT_LOCK_DATE)
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--rate-limit", type=int, default=10, help="requests per second per subscription key")
    limit.add_argument("--no-rate-limit", action="store_true", help="disable the rate limit")
    p.add_argument("--token-lifetime", type=int, default=1200, help="access token lifetime in seconds")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seeds = [ClientSeed(c.client_key, c.spec, args.lock_date) for c in (args.client or [ClientSeed("client-demo")])]
    config = SandboxConfig(
        application_key=args.application_key, subscription_key=args.subscription_key,
        rate_limit_per_second=None if args.no_rate_limit else args.rate_limit,
        token_lifetime_seconds=args.token_lifetime,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with SandboxServer(seeds, config, host=args.host, port=args.port) as sandbox:
        print(f"PowerOffice sandbox listening on {sandbox.base_url}")
        print(f"  api_url           {sandbox.api_url}")
        print(f"  token_url         {sandbox.token_url}")
        print(f"  application_key   {config.application_key}")
        print(f"  subscription_key  {config.subscription_key}")
        print(f"  rate limit        {config.rate_limit_per_second or 'off'} req/s; token lifetime "
              f"{config.token_lifetime_seconds} s")
        for seed in seeds:
            s = sandbox.state.ledgers[seed.client_key].summary()
            print(f"  client {seed.client_key}: {s.customers} customers, {s.invoices} invoices, "
                  f"bank account {BANK_ACCOUNT_NO} has Id {sandbox.bank_account_id(seed.client_key)}, "
                  f"lock date {s.lock_date}")
        print(f"  control           {sandbox.base_url}/_sandbox/summary   (Ctrl-C stops)", flush=True)
        while not stop.wait(0.2):  # a timed wait: the signal may land on another thread
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
