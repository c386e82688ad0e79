"""Gap detection over archive listings (pure logic on names and timeline histories; the real
archive with a deleted segment is in test_archive_faults.py)."""

from __future__ import annotations

import pytest

from dbops.engines.postgresql.wal import lsn_parse, timeline_history_parse, wal_file_name, wal_file_parse
from dbops.services.pitr.wal_gaps import wal_coverage

MB16 = 16 * 1024 * 1024
MB1 = 1024 * 1024


def names(timeline: int, segments, segment_size: int = MB16) -> list[str]:
    return [wal_file_name(timeline, segment, segment_size) for segment in segments]


def test_segment_names_round_trip_across_the_xlogid_boundary():
    # 1 MB segments: 4096 per xlogid, so segment 4096 is 00000001 00000001 00000000
    assert wal_file_name(1, 4096, MB1) == "000000010000000100000000"
    assert wal_file_parse("000000010000000100000000", MB1) == (1, 4096)
    assert wal_file_parse("000000020000000000000003.partial", MB16) is None
    assert timeline_history_parse("1\t0/9000000\tno recovery target specified\n\n") == [(1, lsn_parse("0/9000000"))]


def test_a_complete_archive_has_no_gap():
    coverage = wal_coverage(names=names(1, range(3, 9)), start_wal=names(1, [3])[0], segment_size=MB16, histories={})
    assert coverage.gaps == [] and coverage.last_wal == "000000010000000000000008" and coverage.timeline == 1


def test_missing_segments_are_reported_as_runs_with_the_last_one_before_them():
    archived = names(1, [3, 4, 7, 9, 10])
    coverage = wal_coverage(names=archived, start_wal=archived[0], segment_size=MB16, histories={})
    assert [(gap.first_missing, gap.last_missing, gap.segments, gap.after) for gap in coverage.gaps] == [
        ("000000010000000000000005", "000000010000000000000006", 2, "000000010000000000000004"),
        ("000000010000000000000008", "000000010000000000000008", 1, "000000010000000000000007"),
    ]


def test_a_missing_first_segment_is_a_gap_with_nothing_before_it():
    coverage = wal_coverage(names=names(1, [4, 5]), start_wal=names(1, [3])[0], segment_size=MB16, histories={})
    [gap] = coverage.gaps
    assert gap.first_missing == "000000010000000000000003" and gap.after is None


def test_gaps_across_the_xlogid_boundary_with_small_segments():
    archived = names(1, [4094, 4095, 4097], MB1)
    [gap] = wal_coverage(names=archived, start_wal=archived[0], segment_size=MB1, histories={}).gaps
    assert gap.first_missing == "000000010000000100000000" and gap.after == "000000010000000000000FFF"


@pytest.fixture
def promoted_at_segment_6():
    """Timeline 2 forked from timeline 1 inside segment 6; the old server went on writing timeline 1."""
    history = {2: timeline_history_parse("1\t0/6800000\tbefore 2026-01-27 12:00:00+00\n")}
    archived = names(1, [3, 4, 5, 6, 7, 8]) + ["000000010000000000000006.partial", "00000002.history"]
    archived += names(2, [6, 7, 8, 9])
    return archived, history


def test_recovery_follows_the_newest_timeline_and_its_history(promoted_at_segment_6):
    archived, history = promoted_at_segment_6
    coverage = wal_coverage(names=archived, start_wal=names(1, [3])[0], segment_size=MB16, histories=history)
    assert coverage.timeline == 2 and coverage.gaps == [] and coverage.last_wal == "000000020000000000000009"


def test_a_segment_missing_on_the_followed_timeline_is_a_gap_even_if_the_old_timeline_has_it(promoted_at_segment_6):
    archived, history = promoted_at_segment_6
    archived.remove("000000020000000000000007")  # timeline 1's segment 7 is still there: not the one replay reads
    [gap] = wal_coverage(names=archived, start_wal=names(1, [3])[0], segment_size=MB16, histories=history).gaps
    assert gap.first_missing == "000000020000000000000007" and gap.after == "000000020000000000000006"


def test_the_switch_segment_is_read_from_the_new_timeline(promoted_at_segment_6):
    archived, history = promoted_at_segment_6
    archived.remove("000000020000000000000006")
    [gap] = wal_coverage(names=archived, start_wal=names(1, [3])[0], segment_size=MB16, histories=history).gaps
    assert gap.first_missing == "000000020000000000000006" and gap.after == "000000010000000000000005"


def test_a_backup_taken_on_the_old_timeline_after_the_fork_stays_on_it(promoted_at_segment_6):
    archived, history = promoted_at_segment_6
    coverage = wal_coverage(names=archived, start_wal=names(1, [7])[0], segment_size=MB16, histories=history)
    assert coverage.timeline == 1 and coverage.gaps == [] and coverage.last_wal == "000000010000000000000008"
