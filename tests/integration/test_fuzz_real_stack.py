"""Property-based fuzzing of the real stack, at the size the test suite can afford (`make fuzz`
runs the same at full size): hostile records and Visma rows interleaved with good payments; the
processes stay up, no partition is left behind, every good payment is registered once and marked,
every bad item is dead-lettered exactly once, and nothing is posted that Visma does not hold."""
from __future__ import annotations

import pytest

from tests.fuzz.run import run


@pytest.mark.slow
def test_hostile_records_and_rows_never_crash_stall_double_or_misplace_money(kafka_bootstrap, tmp_path):
    report = run(kafka_bootstrap, tmp_path, records=600, rows=60, actors=6, payments=60, seed=7, timeout_s=300)
    print(report.line)
    assert report.problems == [] and report.ok, "\n".join(report.problems[:30]) + "\n" + report.line
    assert (report.crashed, report.stuck, report.wrongly_applied) == (0, 0, 0)
    assert report.dead_lettered > 0 and report.good_applied == report.good > 0
