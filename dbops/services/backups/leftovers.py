"""What killed or cut-off restores and verifications leave behind, repaired: a half-done rename swap
(the database missing), scratch databases, work folders and running restore records of dead runs.
Run at the start of every dbops command, as a health_check check and in each retention run; it costs
one catalog query per database, one query of the restore records and one listing of the temp folder
when there is nothing to do."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connections

from dbops.artifacts.workdir import work_folders_remove_dead
from dbops.engines import CONNECTOR_MAPPING, LeftoversRecovery, get_connector
from dbops.exceptions import DatabaseUnavailable
from dbops.services.reports import report_as_dict

logger = logging.getLogger(__name__)


@dataclass
class LeftoversReport(LeftoversRecovery):
    unreachable: list[str] = field(default_factory=list)  # aliases whose server could not be asked

    @property
    def lines(self) -> list[str]:
        """What was done and what could not be, one line each (what is running is not news)."""
        return self.done + self.failed

    def as_dict(self) -> dict:
        return report_as_dict(self)


def _distinct_databases(aliases: Iterable[str]) -> list[str]:
    """One alias per database: two aliases on the same database are repaired once."""
    seen, distinct = set(), []
    for alias in aliases:
        settings_dict = connections.settings[alias]
        if settings_dict["ENGINE"] not in CONNECTOR_MAPPING:
            continue
        key = (settings_dict["ENGINE"], settings_dict.get("HOST"), settings_dict.get("PORT"), settings_dict["NAME"])
        if key not in seen:
            seen.add(key)
            distinct.append(alias)
    return distinct


def restore_leftovers_recover(*, aliases: Iterable[str] | None = None, log: bool = True) -> LeftoversReport:
    """Repairs the leftovers of interrupted runs for `aliases` (default: every configured database) and
    removes dead runs' work folders. Never raises: what it cannot do is in the report's `failed`.
    `log=False` for callers that print the lines themselves (commands), so they do not appear twice."""
    report = LeftoversReport()
    by_engine: dict[type, list] = {}
    for alias in _distinct_databases(connections if aliases is None else aliases):
        connector = get_connector(alias)
        by_engine.setdefault(type(connector), []).append(connector)
    for engine, connectors in by_engine.items():
        try:
            report.extend(engine.restore_leftovers_recover_all(connectors))
        except DatabaseUnavailable:
            report.unreachable += [connector.alias for connector in connectors]  # the command says so itself
        except Exception as exc:  # noqa: BLE001 - a repair that cannot run must not stop the command it precedes
            names = ", ".join(connector.database_name for connector in connectors)
            report.failed.append(f"Could not check {names} for leftovers of interrupted restores: {exc}")
    # Imported here: the command base imports this module, and show_config/validate_config must load
    # without models (they explain a bad environment that stops the settings from loading).
    from dbops.services.backups.restore_history import restore_records_interrupted_fail

    interrupted = restore_records_interrupted_fail()
    report.done += [f"Marked restore #{pk} failed: its process ended without finishing." for pk in interrupted]
    removed, failed = work_folders_remove_dead()
    report.done += [f"Removed the work folder {folder.path} of a dead run ({folder.owner})." for folder in removed]
    report.failed += failed
    for line in report.lines if log else ():
        logger.warning("%s", line)
    return report
