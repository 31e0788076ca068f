"""Running every company's rounds on a few threads, each company when it is due.

A thread per company made 500 companies 500 threads (plus their Kafka clients' 500) all asking
for the interpreter at once: at a producer's start, when each company publishes its first
credit-block snapshot, transactions took long enough to time out in the broker (15 s), which
fences them. A small pool does the same work with little contention: a round is a few
milliseconds of Python around a database round trip, so `threads` threads carry thousands of
rounds a second.

One thread (the caller of `run`) keeps the timetable and hands each due round to the pool
through a queue; it wakes at most every `batch_s` and then hands over every round due by then,
so 500 companies polled every second cost it a hundred wake-ups a second, not five hundred, and
the pool's threads wait in the queue (C code) rather than in Python conditions. A round so
starts up to `batch_s` late.

A company stuck in a call (a database that stopped answering mid-query) must not hold up the
others: a thread busy with one round for longer than `stuck_after_s` is not counted, and the
pool starts another in its place; the extra thread ends once the stuck one is back.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Callable, Protocol

log = logging.getLogger(__name__)


class Job(Protocol):
    def run_round(self) -> float | None:
        """One round; returns the seconds until the next one, or None to run no more."""
        ...


_STOP = object()  # handed to a pool thread: end
STOP_CHECK_S = 0.25  # the timetable looks at the stop event at least this often


class Scheduler:
    def __init__(self, threads: int, *, stuck_after_s: float = 30.0, batch_s: float = 0.01,
                 clock: Callable[[], float] = time.monotonic, name: str = "producer"):
        if threads < 1:
            raise ValueError("a scheduler needs at least one thread")
        self.size = threads
        self.stuck_after_s = stuck_after_s
        self.batch_s = batch_s
        self.clock = clock
        self.name = name
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()  # the timetable, the busy and thread sets
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._handed = 0  # rounds in the queue, not yet taken by a pool thread
        self._wake = threading.Event()  # a round was added before the timetable's next wake-up
        self._next_wake = float("inf")
        self._stopped = False
        self._threads: set[threading.Thread] = set()
        self._busy: dict[threading.Thread, float] = {}  # thread -> when its current round started
        self._names = itertools.count(1)

    def add(self, job: Job, delay_s: float = 0.0) -> None:
        with self._lock:
            self._push(self.clock() + delay_s, job)

    def _push(self, due: float, job: Job) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), job))
        if due < self._next_wake:  # the timetable thread would sleep past it
            self._wake.set()

    def run(self, stop: threading.Event, check_every_s: float = 1.0) -> None:
        """Run the pool until `stop` is set (or every job has ended); then wait for the rounds in progress."""
        with self._lock:
            for _ in range(self.size):
                self._start_thread()
        next_check = self.clock() + check_every_s
        while not stop.is_set():
            now = self.clock()
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    self._ready.put(heapq.heappop(self._heap)[2])
                    self._handed += 1
                if now >= next_check:
                    next_check = now + check_every_s
                    if not self._heap and not self._busy and not self._handed:
                        break  # every job has ended
                    self._replace_stuck()
                due = self._heap[0][0] if self._heap else float("inf")
                self._next_wake = max(min(due, next_check), now + self.batch_s)
                self._wake.clear()
            self._wake.wait(min(max(0.0, self._next_wake - self.clock()), STOP_CHECK_S))
        with self._lock:
            self._stopped = True
            threads = list(self._threads)
        for _ in threads:
            self._ready.put(_STOP)
        for thread in threads:
            thread.join(timeout=30)

    @property
    def threads(self) -> int:
        with self._lock:
            return len(self._threads)

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self.name}-{next(self._names)}", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _stuck(self) -> int:
        limit = self.clock() - self.stuck_after_s
        return sum(1 for started in self._busy.values() if started < limit)

    def _replace_stuck(self) -> None:
        stuck = self._stuck()
        while len(self._threads) - stuck < self.size:
            log.warning("%s round(s) running for over %.0fs: another thread takes over the other companies", stuck,
                        self.stuck_after_s)
            self._start_thread()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            job = self._ready.get()
            with self._lock:
                if job is _STOP or self._stopped:
                    self._threads.discard(me)
                    return
                self._handed -= 1
                self._busy[me] = self.clock()
            delay: float | None
            try:
                delay = job.run_round()
            except Exception:  # noqa: BLE001 - a job reports its own errors; this is a bug
                log.exception("a company round failed unexpectedly; trying again in 5 s")
                delay = 5.0
            with self._lock:
                self._busy.pop(me, None)
                if delay is not None and not self._stopped:
                    self._push(self.clock() + delay, job)
                if len(self._threads) > self.size and len(self._threads) - self._stuck() > self.size:
                    self._threads.discard(me)  # a stand-in no longer needed (the stuck round is back)
                    return
