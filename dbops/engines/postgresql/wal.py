"""PostgreSQL's WAL naming: LSNs, segment file names, timeline history files, and which timeline serves
each segment when recovery follows a timeline's history (as XLogFileReadAnyTLI picks the file).

Pure arithmetic on names and history text: nothing here reads storage or talks to a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT_NAME = re.compile(r"^(?P<tli>[0-9A-F]{8})(?P<high>[0-9A-F]{8})(?P<low>[0-9A-F]{8})$")
HISTORY_NAME = re.compile(r"^(?P<tli>[0-9A-F]{8})\.history$")


def lsn_parse(lsn: str) -> int:
    """'1/A3000028' -> the 64-bit position."""
    try:
        high, low = (int(part, 16) for part in lsn.split("/"))
    except ValueError:
        raise ValueError(f"{lsn!r} is not an LSN like 0/3000028") from None
    return (high << 32) | low


def segments_per_xlogid(segment_size: int) -> int:
    return 0x100000000 // segment_size


def wal_segment_number(lsn: str | int, segment_size: int) -> int:
    position = lsn_parse(lsn) if isinstance(lsn, str) else lsn
    return position // segment_size


def wal_file_name(timeline: int, segment: int, segment_size: int) -> str:
    per_id = segments_per_xlogid(segment_size)
    return f"{timeline:08X}{segment // per_id:08X}{segment % per_id:08X}"


def wal_segment_name(timeline: int, lsn: str, segment_size: int) -> str:
    """The WAL file holding an LSN such as 0/2000028 (as PostgreSQL's pg_walfile_name computes it)."""
    return wal_file_name(timeline, wal_segment_number(lsn, segment_size), segment_size)


def wal_file_parse(name: str, segment_size: int) -> tuple[int, int] | None:
    """'000000020000000100000003' -> (timeline 2, segment number); None for any other kind of name."""
    match = SEGMENT_NAME.match(name)
    if match is None:
        return None
    return int(match["tli"], 16), int(match["high"], 16) * segments_per_xlogid(segment_size) + int(match["low"], 16)


def history_timeline(name: str) -> int | None:
    match = HISTORY_NAME.match(name)
    return int(match["tli"], 16) if match else None


def timeline_history_parse(text: str) -> list[tuple[int, int]]:
    """A NNNNNNNN.history file: one `parent_tli<TAB>switch_lsn<TAB>reason` line per ancestor, oldest
    first. Returns [(parent timeline, LSN where it ended)]."""
    entries = []
    for line in text.splitlines():
        fields = line.strip().split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise ValueError(f"timeline history line {line!r} has no switch point")
        entries.append((int(fields[0]), lsn_parse(fields[1])))
    return entries


@dataclass(frozen=True)
class TimelineSpan:
    timeline: int
    first_segment: int
    end_segment: int | None  # exclusive: from here on a newer timeline serves; None for the newest

    def serves(self, segment: int) -> bool:
        return segment >= self.first_segment and (self.end_segment is None or segment < self.end_segment)


def timeline_plan(
    *, start_timeline: int, start_segment: int, histories: dict[int, list[tuple[int, int]]], segment_size: int
) -> list[TimelineSpan]:
    """Which timeline serves each segment for a recovery that starts at (start_timeline, start_segment)
    and follows the newest timeline descending from it (recovery_target_timeline = 'latest').

    The segment holding a switch point is read from the newer timeline (it starts with a copy of
    the parent's WAL up to the switch), as PostgreSQL does."""
    target = start_timeline
    for timeline, ancestors in histories.items():
        ends = {parent: wal_segment_number(switch, segment_size) for parent, switch in ancestors}
        if timeline > target and start_timeline in ends and ends[start_timeline] >= start_segment:
            target = timeline
    spans, first = [], 0
    for parent, switch in histories.get(target, []) if target != start_timeline else []:
        end = wal_segment_number(switch, segment_size)
        spans.append(TimelineSpan(parent, first, end))
        first = end
    spans.append(TimelineSpan(target, first, None))
    return [span for span in spans if span.end_segment is None or span.end_segment > start_segment]
