"""Result records of the services as plain values, for --json output and task results."""

from __future__ import annotations

import dataclasses


def report_as_dict(report) -> dict:
    """Every field of a result dataclass; `failed` (name, error) pairs become {"name", "error"} objects."""
    plain = dataclasses.asdict(report)
    failed = plain.get("failed")
    if failed and all(isinstance(item, tuple | list) and len(item) == 2 for item in failed):
        plain["failed"] = [{"name": name, "error": error} for name, error in failed]
    return plain
