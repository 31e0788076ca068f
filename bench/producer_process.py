"""The process the producer benchmark measures: only the producer, as `vb2po fetch-now --all` runs it.

    python -m bench.producer_process SETTINGS.yaml [PROFILE.txt]

Loads the settings file the way the service does, starts `ProducerService`, times one
`fetch_now()` (connect, read every pending payment page by page, publish each page with the
moved cursor in one Kafka transaction) and prints one JSON line: events published, seconds (wall and CPU, all threads),
and this process's RSS before the poll and at its peak (VmHWM); and the CPU time and peak RSS of
its child processes (the read-ahead process of producer/read_ahead.py, which lives only during the
poll; sampled every 0.1 s, so the last tenth of a second of a child's CPU may be missing). With PROFILE.txt, the
poll runs under pyinstrument (sampling; `pip install pyinstrument` into .venv, not a project
dependency) and its call tree is written there.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import psutil

from producer.service import ProducerService
from vb2po.settings import load


def main(settings_path: str, profile_path: str | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="producer: %(levelname)s %(name)s: %(message)s")
    settings = load(settings_path)
    service = ProducerService(settings).start()
    peaks = {"after_start_mb": _peak_mb()}
    try:
        me = psutil.Process()
        rss_before = me.memory_info().rss
        profiler = _profiler() if profile_path else None
        children = _ChildUsage(me)
        cpu_before = me.cpu_times()
        started = time.perf_counter()
        outcomes = service.fetch_now()
        seconds = time.perf_counter() - started
        cpu_after = me.cpu_times()
        children.stop()
        peaks["after_poll_mb"] = _peak_mb()
        if profiler is not None:
            profiler.stop()
            Path(profile_path).write_text(profiler.output_text(unicode=True, show_all=True))
    finally:
        service.close()
    print(json.dumps({
        "published": sum(o.published for o in outcomes.values()),
        "rows_read": sum(o.rows_read for o in outcomes.values()),
        "bad_rows": sum(o.bad_rows for o in outcomes.values()),
        "seconds": seconds,
        "cpu_seconds": (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
        "rss_before_poll_mb": rss_before / 2**20,
        "peak_rss_mb": _peak_mb(),
        "peak_rss_by_stage_mb": peaks,
        "children_cpu_seconds": children.cpu_seconds(),
        "children_peak_rss_mb": children.peak_rss / 2**20,
    }), flush=True)
    return 0


class _ChildUsage:
    """CPU time used, and the largest RSS, of this process's descendants from now on (sampled)."""

    def __init__(self, me: psutil.Process):
        self._me = me
        self._start = {p.pid: _cpu(p) for p in me.children(recursive=True)}  # (the fork server, idle)
        self._last: dict[int, float] = {}
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for child in self._me.children(recursive=True):
                try:
                    self._last[child.pid] = _cpu(child)
                    if child.pid not in self._start:
                        self.peak_rss = max(self.peak_rss, child.memory_info().rss)
                except psutil.Error:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_seconds(self) -> float:
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._last.items())


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _peak_mb() -> float:
    """This process's peak resident set so far: VmHWM of its own address space.

    Not `ru_maxrss`: Linux carries the parent's high-water mark over fork/exec into it, so a
    child of a big parent would report the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _profiler():
    from pyinstrument import Profiler  # only when profiling: not a project dependency

    profiler = Profiler(interval=0.001)
    profiler.start()
    return profiler


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
