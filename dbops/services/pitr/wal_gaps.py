"""Gaps in the WAL archive, found from the listing before any restore needs the missing WAL.

From a base backup's first segment to the newest archived one, every segment must be archived on
the timeline recovery will read it from (the newest timeline descending from the backup, through
its .history file, as recovery_target_timeline = 'latest' does). A missing segment means replay
stops there: `pitr status` shows it, `pitr restore` refuses a target beyond it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from dbops.engines.postgresql.wal import (
    history_timeline,
    timeline_history_parse,
    timeline_plan,
    wal_file_name,
    wal_file_parse,
)
from dbops.exceptions import PitrError
from dbops.models import PitrBaseBackup
from dbops.services.pitr.wal_archive import wal_archived_at, wal_archived_names, wal_history_read


@dataclass(frozen=True)
class WalGap:
    first_missing: str
    last_missing: str
    segments: int  # how many are missing in this run
    after: str | None  # the archived segment just before the gap (None: the backup's first one is missing)


@dataclass
class WalCoverage:
    start_wal: str
    timeline: int  # the timeline recovery ends up on
    last_wal: str | None  # newest archived segment on the way there
    gaps: list[WalGap] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class WalArchiveListing:
    cluster_id: str
    names: list[str]
    histories: dict[int, list[tuple[int, int]]]  # timeline -> [(parent timeline, switch LSN)]


def wal_archive_listing(*, cluster_id: str, storage: str | None = None) -> WalArchiveListing:
    """The names archived for one cluster, with its timeline history files read."""
    names = wal_archived_names(cluster_id=cluster_id, storage=storage)
    histories = {}
    for name in names:
        timeline = history_timeline(name)
        if timeline is not None:
            text = wal_history_read(cluster_id=cluster_id, name=name, storage=storage)
            try:
                histories[timeline] = timeline_history_parse(text)
            except ValueError as exc:
                raise PitrError(f"Archived timeline history {name} of cluster {cluster_id}: {exc}") from exc
    return WalArchiveListing(cluster_id=cluster_id, names=names, histories=histories)


def wal_coverage(
    *, names: Iterable[str], start_wal: str, segment_size: int, histories: dict[int, list[tuple[int, int]]]
) -> WalCoverage:
    """Missing segments between `start_wal` and the newest archived segment recovery would read."""
    start = wal_file_parse(start_wal, segment_size)
    if start is None:
        raise PitrError(f"{start_wal!r} is not a WAL segment name.")
    start_timeline, start_segment = start
    plan = timeline_plan(
        start_timeline=start_timeline, start_segment=start_segment, histories=histories, segment_size=segment_size
    )

    def serving(segment: int) -> int:
        return next(span.timeline for span in plan if span.serves(segment))

    on_path = sorted(
        segment
        for timeline, segment in filter(None, (wal_file_parse(name, segment_size) for name in names))
        if segment >= start_segment and serving(segment) == timeline
    )
    coverage = WalCoverage(start_wal=start_wal, timeline=plan[-1].timeline, last_wal=None)
    if not on_path:
        return coverage

    def file_of(segment: int) -> str:
        return wal_file_name(serving(segment), segment, segment_size)

    coverage.last_wal = file_of(on_path[-1])

    previous = start_segment - 1
    for segment in on_path:
        if segment > previous + 1:
            first, last = previous + 1, segment - 1
            after = file_of(previous) if previous >= start_segment else None
            coverage.gaps.append(WalGap(file_of(first), file_of(last), segments=last - first + 1, after=after))
        previous = segment
    return coverage


def base_backup_wal_coverage(pitr: PitrBaseBackup, listing: WalArchiveListing) -> WalCoverage:
    return wal_coverage(
        names=listing.names, start_wal=pitr.start_wal, segment_size=pitr.wal_segment_size, histories=listing.histories
    )


def restore_wal_gap(*, pitr: PitrBaseBackup, target_time: datetime) -> WalGap | None:
    """The first gap a restore from this base backup to `target_time` would hit, or None.

    A gap after a segment archived later than the target is not needed: replay stops before it."""
    listing = wal_archive_listing(cluster_id=pitr.cluster_id, storage=pitr.storage)
    coverage = base_backup_wal_coverage(pitr, listing)
    if not coverage.gaps:
        return None
    gap = coverage.gaps[0]
    if gap.after is not None:
        archived_at = wal_archived_at(cluster_id=pitr.cluster_id, name=gap.after, storage=pitr.storage)
        if archived_at > target_time:
            return None
    return gap
