"""Where a replay moves each partition, and what it refuses to be asked. Pure."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from admin.actions.errors import Invalid
from admin.actions.replay import ReplaySpec, target_offset


@pytest.mark.parametrize("spec, at_time, expected", [
    (ReplaySpec(to_beginning=True), None, 10),
    (ReplaySpec(to_offset=15), None, 15),
    (ReplaySpec(to_offset=3), None, 10),  # older than the topic still holds: its beginning
    (ReplaySpec(to_offset=500), None, 40),  # beyond the end: the end
    (ReplaySpec(to_time=datetime(2026, 3, 1, tzinfo=timezone.utc)), 22, 22),
    (ReplaySpec(to_time=datetime(2026, 3, 1, tzinfo=timezone.utc)), None, 40),  # nothing that new: the end
])
def test_the_target_offset_is_clamped_to_what_the_partition_holds(spec, at_time, expected):
    assert target_offset(spec, beginning=10, end=40, at_time=at_time) == expected


@pytest.mark.parametrize("kwargs", [
    {}, {"to_offset": 1, "to_beginning": True}, {"to_offset": -1},
    {"to_time": datetime(2026, 3, 1)}, {"to_beginning": True, "topics": ("dead-letters",)},
])
def test_a_replay_must_say_exactly_where_to_and_which_consumer_topics(kwargs):
    with pytest.raises(Invalid):
        ReplaySpec(**kwargs)
