"""The `<name>_pre_restore_<time>` databases a full restore leaves behind (the database it replaced,
kept "until the next retention run"): list them and drop all but the newest. The engine lists and
drops them; this service only decides which ones go."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections

from dbops.engines import get_connector
from dbops.exceptions import DbopsError, RetentionError
from dbops.services.reports import report_as_dict

logger = logging.getLogger(__name__)

PRE_RESTORE_INFIX = "_pre_restore_"


@dataclass
class PreRestorePrune:
    database: str
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    would_drop: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return report_as_dict(self)


def _pre_restore_pattern(database_name: str) -> re.Pattern:
    # The restore engine names them `<name cut to fit 63 bytes>_pre_restore_<YYYYmmddHHMMSS>`.
    suffix_length = len(PRE_RESTORE_INFIX) + 14
    return re.compile(re.escape(database_name[: 63 - suffix_length]) + re.escape(PRE_RESTORE_INFIX) + r"(\d{14})")


def pre_restore_databases(*, database: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Names of the kept pre-restore copies of `database`, newest first (none on engines that keep none)."""
    connector = get_connector(database)
    pattern = _pre_restore_pattern(connector.database_name)
    stamped = [
        (match.group(1), name) for name in connector.pre_restore_databases() if (match := pattern.fullmatch(name))
    ]
    return [name for _, name in sorted(stamped, reverse=True)]


def pre_restore_databases_prune(*, database: str = DEFAULT_DB_ALIAS, dry_run: bool = False) -> PreRestorePrune:
    """Drops every pre-restore copy of `database` except the newest one; a copy still in use is
    reported as failed and left alone (never forced)."""
    if database not in connections.settings:
        raise RetentionError(f"Unknown database alias {database!r} (known: {', '.join(connections.settings)}).")
    names = pre_restore_databases(database=database)
    result = PreRestorePrune(database=database, kept=names[:1])
    if dry_run:
        result.would_drop = names[1:]
        return result
    connector = get_connector(database)
    for name in names[1:]:
        try:
            connector.drop_database(name, force=False)
        except DbopsError as exc:
            logger.warning("retention could not drop pre-restore database %s: %s", name, exc)
            result.failed.append((name, str(exc)))
        else:
            logger.info("retention dropped pre-restore database %s", name)
            result.dropped.append(name)
    return result
