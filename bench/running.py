"""How every benchmark runs as a command: SIGTERM unwinds like Ctrl-C, so each `finally` stops
what the benchmark started, and an interrupted run says so in one line."""
from __future__ import annotations

import signal
import sys
from typing import Callable


def stop_on_sigterm() -> None:
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def run(main: Callable[[], int]) -> int:
    try:
        return main()
    except KeyboardInterrupt as exc:
        print(f"bench: interrupted ({exc or 'Ctrl-C'}); everything started was stopped", file=sys.stderr)
        return 130
