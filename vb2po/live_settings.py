"""The operators' setting changes, shared by every process through a compacted Kafka topic.

One record (key `integration`) holds the current overrides with a version; each producer and
consumer reads it at start and then every second, and applies a newer version to itself. A
reader catches up to the topic's end before answering, so a change made by the admin API is
what the next read sees.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Protocol

from vb2po import metrics
from vb2po.integration_settings import Applied, ChangeRefused, Overrides, apply_what_fits
from vb2po.kafka.clients import plain_producer
from vb2po.kafka.compacted import CompactedTopicReader
from vb2po.settings import KafkaSettings, Settings

if TYPE_CHECKING:
    from kafka import KafkaProducer

log = logging.getLogger(__name__)

RECORD_KEY = b"integration"
# Every event carries the settings version it was produced under, so a consumer that is
# behind (it learns of changes within a second) catches up before it applies such an event.
VERSION_HEADER = "vb2po-settings-version"


def version_header(version: int) -> list[tuple[str, bytes]]:
    return [(VERSION_HEADER, str(version).encode())]


def version_in(headers) -> int:
    """The settings version an event was produced under (0 when it says none)."""
    for name, value in headers or ():
        if name == VERSION_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0
    return 0


class OverridesStore(Protocol):
    def current(self) -> Overrides: ...
    def put(self, overrides: Overrides) -> None: ...
    def close(self) -> None: ...


class KafkaOverridesStore:
    def __init__(self, kafka: KafkaSettings, *, catch_up_timeout_s: float = 10):
        self.topic = kafka.topics.integration_settings
        self._timeout_s = catch_up_timeout_s
        self._lock = threading.Lock()
        self._current = Overrides()
        self._producer: KafkaProducer | None = None  # created at the first put
        self._kafka = kafka
        self._reader = CompactedTopicReader(kafka, self.topic, self._apply)  # created at start with the others

    def _apply(self, record) -> None:
        if record.key == RECORD_KEY:
            self._current = Overrides() if record.value is None else Overrides.decode(record.value)

    def current(self) -> Overrides:
        with self._lock:
            self._reader.catch_up(self._timeout_s)
            return self._current

    def put(self, overrides: Overrides) -> None:
        """Durable (acks=all) before it returns."""
        producer = self._producer
        if producer is None:
            producer = self._producer = plain_producer(self._kafka, "vb2po-settings")
        producer.send(self.topic, key=RECORD_KEY, value=overrides.encode()).get(timeout=30)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
        self._reader.close()


class MemoryOverridesStore:
    def __init__(self, overrides: Overrides | None = None) -> None:
        self.overrides = overrides or Overrides()

    def current(self) -> Overrides:
        return self.overrides

    def put(self, overrides: Overrides) -> None:
        self.overrides = overrides

    def close(self) -> None:
        pass


Listener = Callable[[Settings, Overrides], None]


class LiveSettings:
    """The effective settings of this process: the file's, plus the operators' overrides,
    followed while the process runs. Listeners are called (on the watcher thread, or on the
    thread that published) with each newer version."""

    def __init__(self, base: Settings, store: OverridesStore, *, interval_s: float = 1.0):
        self.base = base
        self.store = store
        self.interval_s = interval_s
        self.overrides = Overrides()
        self.applied = Applied(base)
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        return self.applied.settings

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def refresh(self) -> bool:
        """Read the store; apply and announce a newer version. True when something changed."""
        with self._lock:
            overrides = self.store.current()
            if overrides.version <= self.overrides.version:
                return False
            # The file may have changed under an old override: what no longer fits is left out, loudly.
            applied = apply_what_fits(self.base, overrides)
            for problem in applied.stale:
                log.error("settings override left out (%s); `vb2po config reset PATH` removes it", problem)
            self.overrides, self.applied = overrides, applied
            metrics.SETTINGS_VERSION.set(overrides.version)
            if overrides.version:
                log.info("settings version %s applied (changed by %s at %s): %s", overrides.version,
                         overrides.changed_by, overrides.changed_at, sorted(overrides.values))
            for listener in self._listeners:
                listener(applied.settings, overrides)
            return True

    def stale(self) -> tuple[str, ...]:
        return self.applied.stale

    def publish(self, overrides: Overrides) -> None:
        """Store a new version made from the current one, and apply it here at once."""
        with self._lock:
            latest = self.store.current()
            if latest.version != overrides.version - 1:
                raise ChangeRefused(f"the settings were changed meanwhile (version {latest.version}, by {latest.changed_by})",
                                    "look at `vb2po config show` and make the change again")
            self.store.put(overrides)
            self.refresh()

    def start(self) -> "LiveSettings":
        self._thread = threading.Thread(target=self._watch, name="settings-watch", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - Kafka briefly away: the next round tries again
                if failing_since is None:  # once per outage, not every second
                    failing_since = time.monotonic()
                    log.warning("could not read the settings topic (%s); running on settings version %s until it "
                                "answers again", exc, self.overrides.version)
                continue
            if failing_since is not None:
                log.info("the settings topic answers again after %.0fs", time.monotonic() - failing_since)
                failing_since = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.close()


def follow_settings(base: Settings, *, interval_s: float = 1.0) -> LiveSettings:
    """Read the overrides once (the topics exist) and keep following them."""
    live = LiveSettings(base, KafkaOverridesStore(base.kafka), interval_s=interval_s)
    live.refresh()
    return live.start()
