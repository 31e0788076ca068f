"""The producer's pool of company rounds: each company when due, a few threads for many companies,
and a company stuck in a call does not hold up the others."""
from __future__ import annotations

import threading
import time

from producer.schedule import Scheduler
from tests.services import wait_for


class Counting:
    def __init__(self, every_s: float, rounds: int | None = None):
        self.every_s, self.rounds, self.times = every_s, rounds, []

    def run_round(self) -> float | None:
        self.times.append(time.monotonic())
        if self.rounds is not None and len(self.times) >= self.rounds:
            return None
        return self.every_s


def running(scheduler: Scheduler, check_every_s: float = 0.05):
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), kwargs={"check_every_s": check_every_s}, daemon=True)
    thread.start()
    return stop, thread


def test_many_companies_run_on_a_few_threads_each_at_its_own_interval():
    scheduler = Scheduler(3)
    jobs = [Counting(0.05) for _ in range(40)]
    for job in jobs:
        scheduler.add(job)
    stop, thread = running(scheduler)
    try:
        wait_for(lambda: all(len(j.times) >= 5 for j in jobs), timeout=10, what="five rounds of every job")
        assert scheduler.threads == 3
        gaps = [b - a for j in jobs for a, b in zip(j.times, j.times[1:], strict=False)]
        assert min(gaps) >= 0.05 - 1e-3  # never sooner than asked
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_a_job_that_returns_none_runs_no_more_and_the_pool_ends_when_none_is_left():
    scheduler = Scheduler(2)
    job = Counting(0.01, rounds=3)
    scheduler.add(job)
    stop, thread = running(scheduler)
    thread.join(5)
    assert not thread.is_alive() and len(job.times) == 3


def test_a_round_stuck_in_a_call_gets_a_stand_in_thread_for_the_others():
    release = threading.Event()

    class Stuck:
        def run_round(self):
            release.wait(10)
            return None

    scheduler = Scheduler(1, stuck_after_s=0.2)
    other = Counting(0.02)
    scheduler.add(Stuck())
    scheduler.add(other, delay_s=0.05)
    stop, thread = running(scheduler)
    try:
        wait_for(lambda: len(other.times) >= 5, timeout=10, what="the other company's rounds, past the stuck one")
        assert scheduler.threads == 2
        release.set()
        wait_for(lambda: scheduler.threads == 1, timeout=10, what="the stand-in to end once the stuck round returned")
    finally:
        release.set()
        stop.set()
        thread.join(5)


def test_a_round_added_earlier_than_the_awaited_one_is_not_overslept():
    scheduler = Scheduler(2)
    late = Counting(30)
    scheduler.add(late, delay_s=30)
    stop, thread = running(scheduler, check_every_s=60)
    try:
        wait_for(lambda: scheduler._next_wake > time.monotonic() + 20, timeout=5,
                 what="the timetable to sleep towards the round due in 30 s")
        soon = Counting(10)
        added = time.monotonic()
        scheduler.add(soon, delay_s=0.05)
        wait_for(lambda: soon.times, timeout=5, what="the sooner round")
        assert soon.times[0] - added < 0.5
    finally:
        stop.set()
        thread.join(5)
