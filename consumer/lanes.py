"""A bounded pool that runs tasks of different keys concurrently and tasks of one key in
order: one customer's events are applied strictly one after another, while a customer whose
events are waiting for a retry holds up only itself."""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Hashable

log = logging.getLogger(__name__)


class KeyedLanes:
    def __init__(self, workers: int, name: str = "lane"):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._queues: dict[Hashable, deque[Callable[[], None]]] = {}
        self._ready: deque[Hashable] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._pending = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, task: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("lanes are closed")
            queue = self._queues.get(key)
            if queue is None:  # the key is idle: it becomes ready
                self._queues[key] = deque([task])
                self._ready.append(key)
                self._cond.notify()
            else:  # the key is busy or queued: its task waits its turn
                queue.append(task)
            self._pending += 1

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._closed:
                    self._cond.wait()
                if not self._ready:
                    return
                key = self._ready.popleft()
                task = self._queues[key][0]
            try:
                task()
            except Exception:  # noqa: BLE001 - a task must handle its own errors; never kill a lane
                log.exception("task for %r failed", key)
            with self._cond:
                queue = self._queues[key]
                queue.popleft()
                self._pending -= 1
                if queue:
                    self._ready.append(key)  # to the back: other customers get their turn
                    self._cond.notify()
                else:
                    del self._queues[key]
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 30) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
