import random
import threading
import time

from consumer.lanes import KeyedLanes
from consumer.offsets import PartitionOffsets


def test_committed_offset_never_passes_an_unfinished_record():
    offsets = PartitionOffsets()
    for o in (10, 11, 12, 13):
        offsets.started(o)
    offsets.finished(12)
    offsets.finished(13)
    assert offsets.committable() is None  # 10 is still being processed
    offsets.finished(10)
    assert offsets.committable() == 11
    offsets.finished(11)
    assert offsets.committable() == 14 and offsets.in_flight == 0


def test_offsets_finish_in_random_order_and_commit_follows_the_contiguous_prefix():
    offsets = PartitionOffsets()
    order = list(range(100))
    for o in order:
        offsets.started(o)
    random.Random(1).shuffle(order)
    done: set[int] = set()
    for o in order:
        offsets.finished(o)
        done.add(o)
        expected = next(i for i in range(101) if i not in done)
        assert (offsets.committable() or 0) == expected


def test_one_key_runs_in_order_while_other_keys_run_concurrently():
    lanes = KeyedLanes(workers=4)
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()
    concurrent, peak = 0, 0

    def task(key, n):
        def run():
            nonlocal concurrent, peak
            with lock:
                concurrent += 1
                peak = max(peak, concurrent)
            time.sleep(0.002)
            with lock:
                seen.setdefault(key, []).append(n)
                concurrent -= 1
        return run

    for n in range(50):
        for key in "abcdefgh":
            lanes.submit(key, task(key, n))
    assert lanes.wait_idle(timeout=30)
    lanes.close()
    assert all(seen[k] == list(range(50)) for k in "abcdefgh")
    assert 1 < peak <= 4


def test_a_slow_key_holds_up_only_itself():
    lanes = KeyedLanes(workers=2)
    release = threading.Event()
    finished = []
    lanes.submit("slow", lambda: release.wait(10))
    lanes.submit("slow", lambda: finished.append("slow-2"))
    for i in range(20):
        lanes.submit(f"fast-{i}", lambda i=i: finished.append(i))
    deadline = time.monotonic() + 10
    while len(finished) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(x for x in finished if isinstance(x, int)) == list(range(20))
    assert "slow-2" not in finished
    release.set()
    assert lanes.wait_idle(timeout=10)
    lanes.close()
    assert finished[-1] == "slow-2"


def test_a_record_fetched_again_after_a_rebalance_is_not_processed_twice():
    offsets = PartitionOffsets()
    assert offsets.started(5) and offsets.started(6)
    assert not offsets.started(5)  # in flight already
    offsets.finished(5)
    offsets.finished(6)
    assert not offsets.started(6)  # done already
    assert offsets.started(7)
    assert offsets.committable() == 7
