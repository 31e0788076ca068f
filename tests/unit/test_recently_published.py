"""The producer's memory of what it published lately (the re-scan's and the sweep's), and of
where its cursor stood when: pure, no broker."""
from producer import recent
from producer.recent import PublishedBatch, RecentlyPublished, horizon, mark_cursor
from producer.state import CompanyState, apply_record, encode_published, published_key
from vb2po.visma.queries import Position


def pos(minute: int, jno: int, entno: int = 1) -> Position:
    return Position(20261127, 1000 + minute, jno, entno)


def test_a_key_is_known_with_its_publication_time_once_its_batch_is_added():
    known = RecentlyPublished()
    batches = known.new_batches([pos(0, 1), pos(0, 2)], at=100.0)
    assert (1, 1) not in known  # new_batches does not add: that waits for the Kafka commit
    for b in batches:
        known.add(b)
    assert (1, 1) in known and known.published_at((2, 1)) == 100.0
    assert known.published_at((3, 1)) is None
    assert known.new_batches([pos(1, 3)], at=101.0)[0].seq == batches[-1].seq + 1


def test_large_publications_are_split_into_batches_of_bounded_size():
    known = RecentlyPublished()
    batches = known.new_batches([pos(0, n) for n in range(2500)], at=1.0)
    assert [len(b.positions) for b in batches] == [recent.KEYS_PER_BATCH, recent.KEYS_PER_BATCH, 500]


def test_a_batch_expires_once_its_rows_left_the_window_and_its_publication_the_grace_period():
    known = RecentlyPublished()
    for b in known.new_batches([pos(0, 1)], at=100.0) + known.new_batches([pos(5, 2)], at=100.0):
        known.add(b)
    window = (20261127, 1003)
    assert known.expired(window, now=150.0, grace_s=120) == []  # published 50 s ago: still needed by the sweep
    assert known.expired(window, now=300.0, grace_s=120) == [1]  # changed before the window, published long ago
    known.remove([1])
    assert (1, 1) not in known and (2, 1) in known


def test_a_key_published_again_stays_known_when_its_first_batch_expires():
    known = RecentlyPublished()
    first, = known.new_batches([pos(0, 1)], at=100.0)
    known.add(first)
    again, = known.new_batches([pos(0, 1)], at=400.0)
    known.add(again)
    known.remove([first.seq])
    assert known.published_at((1, 1)) == 400.0


def test_the_set_forgets_its_oldest_batches_beyond_its_bound(monkeypatch):
    monkeypatch.setattr(recent, "MAX_KEYS", 3)
    known = RecentlyPublished()
    for n in range(5):
        for b in known.new_batches([pos(9, n)], at=1000.0):
            known.add(b)
    assert sorted(known.expired((20261127, 1000), now=1000.0, grace_s=120)) == [1, 2]


def test_batches_survive_a_restart_through_the_state_topic_and_tombstones_forget_them():
    batch = PublishedBatch(7, 123.5, (pos(1, 10, 2), pos(2, 11, 1)))
    states: dict[int, CompanyState] = {}
    apply_record(states, published_key(3, 7), encode_published(batch))
    apply_record(states, published_key(3, 8), encode_published(PublishedBatch(8, 124.0, (pos(3, 12),))))
    apply_record(states, published_key(3, 8), None)
    rebuilt = RecentlyPublished(states[3].published.values())
    assert rebuilt.published_at((10, 2)) == 123.5 and (12, 1) not in rebuilt
    assert rebuilt.next_seq == 8  # numbering goes on after the newest batch kept


def test_the_horizon_is_where_the_cursor_stood_a_grace_period_ago():
    marks = ()
    for t, minute in ((0.0, 0), (100.0, 1), (200.0, 2)):
        marks = mark_cursor(marks, t, pos(minute, 1), grace_s=120)
    assert horizon(marks, now=110.0, grace_s=120) is None  # nothing published that long ago... but t=0
    assert horizon(marks, now=130.0, grace_s=120) == pos(0, 1)
    assert horizon(marks, now=250.0, grace_s=120) == pos(1, 1)
    assert horizon(marks, now=1000.0, grace_s=120) == pos(2, 1)


def test_cursor_marks_stay_few_and_only_ever_err_towards_waiting():
    marks = ()
    for i in range(10_000):  # a transaction every 0.1 s for 1,000 s
        marks = mark_cursor(marks, i * 0.1, pos(0, i + 1), grace_s=120)
    assert len(marks) <= recent.MARKS_PER_GRACE + 3
    h = horizon(marks, now=999.9, grace_s=120)
    # the true position 120 s ago is key 8,800; a merged mark may only be later in time, so earlier in position
    assert h is not None and 8_800 - 10_000 * 15 / 1000 <= h.jno <= 8_800


def test_a_state_written_before_marks_existed_counts_its_cursor_as_published_long_ago():
    old = b'{"company_no": 1, "payments_cursor": [20261127, 1000, 5, 1], "dead_lettered": []}'
    state = CompanyState.decode_into(CompanyState(1), old)
    assert state.cursor_marks == ((0.0, Position(20261127, 1000, 5, 1)),)
    assert state.last_sweep_at is None
    assert CompanyState.decode_into(CompanyState(1), state.encode()) == state


def test_each_sweep_of_a_key_doubles_its_hold_up_to_a_day():
    assert [recent.sweep_hold(n, 120) for n in range(5)] == [120, 240, 480, 960, 1920]
    assert recent.sweep_hold(20, 120) == recent.sweep_hold(10_000, 120) == 86_400
    assert recent.sweep_hold(-3, 120) == 120  # a count no producer writes: the grace period, no less
    assert recent.sweep_hold(3, 0) == 0  # no grace asked for: the sweep publishes every time
    assert recent.sweep_hold(3, 100_000) == 100_000  # a grace beyond a day is not cut short


def test_swept_keys_count_their_sweeps_and_keep_the_count_through_a_restart():
    known = RecentlyPublished()
    for b in known.new_batches([pos(0, 1), pos(0, 2)], at=100.0):  # the poll
        known.add(b)
    for b in known.new_batches([pos(0, 1), pos(0, 3)], at=400.0, swept=True):
        known.add(b)
    for b in known.new_batches([pos(0, 1)], at=900.0, swept=True):
        known.add(b)
    assert [known.sweeps((n, 1)) for n in (1, 2, 3, 4)] == [2, 0, 1, 0]
    states: dict[int, CompanyState] = {}
    for b in known.batches():
        apply_record(states, published_key(3, b.seq), encode_published(b))
    rebuilt = RecentlyPublished(states[3].published.values())
    assert [rebuilt.sweeps((n, 1)) for n in (1, 2, 3)] == [2, 0, 1]


def test_a_swept_batch_is_kept_until_a_sweep_after_its_hold_has_seen_it():
    known = RecentlyPublished()
    swept, = known.new_batches([pos(0, 1)], at=1000.0, swept=True)  # first sweep: held 240 s
    known.add(swept)
    window = (20261127, 1003)
    assert known.expired(window, now=1000.0 + 240 + 300, grace_s=120, sweep_interval_s=300) == []
    assert known.expired(window, now=1000.0 + 240 + 300 + 121, grace_s=120, sweep_interval_s=300) == [swept.seq]
