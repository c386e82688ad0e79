"""What a point-in-time restore recovers to: a time, an LSN, a transaction id or a named restore point
(`pitr mark NAME` creates one and records its LSN and time beside the cluster's WAL, under
`pitr/<cluster>/restore_points/<name>.json`, so that a restore to it picks the right base backup)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from dbops.engines.postgresql.server import RestorePoint, conf_literal, server_restore_point_create
from dbops.engines.postgresql.wal import lsn_parse
from dbops.exceptions import PitrError
from dbops.services.pitr.wal_archive import archived_cluster_ids, pitr_storage

RESTORE_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class RestoreTarget:
    kind: str  # time | lsn | xid | name: recovery_target_<kind>
    value: str
    time: datetime | None = None  # when known (a time, or a restore point made by `pitr mark`)
    lsn: int | None = None  # when known (an LSN, or a marked restore point)

    @property
    def text(self) -> str:
        return {
            "time": self.value,
            "lsn": f"LSN {self.value}",
            "xid": f"transaction {self.value}",
            "name": f"restore point {self.value!r}",
        }[self.kind]

    @property
    def conf_line(self) -> str:
        return f"recovery_target_{self.kind} = {conf_literal(self.value)}"


def _restore_point_key(cluster_id: str, name: str) -> str:
    return f"pitr/{cluster_id}/restore_points/{name}.json"


def _check_point_name(name: str, parameter: str = "") -> None:
    if not RESTORE_POINT_NAME.match(name):
        what = f"{name!r} is not a restore point name: up to 63 letters, digits, '.', '_' or '-'."
        raise PitrError(what, parameter=parameter)


def pitr_mark(*, name: str, using: str = DEFAULT_DB_ALIAS, storage: str | None = None) -> RestorePoint:
    """Creates a restore point on the server and records it beside the cluster's WAL."""
    _check_point_name(name)
    _kind, backend = pitr_storage(storage)
    point = server_restore_point_create(using=using, name=name)
    key = _restore_point_key(point.cluster_id, name)
    if backend.exists(key):
        backend.delete(key)  # PostgreSQL allows the same name twice; recovery stops at the first, we keep the newest
    payload = {"name": name, "lsn": point.lsn, "created_at": point.created_at.isoformat(), "wal_file": point.wal_file}
    backend.save(key, ContentFile(json.dumps(payload, indent=2).encode()))
    return point


def _marked_point(name: str) -> dict | None:
    _kind, backend = pitr_storage()
    for cluster_id in archived_cluster_ids():
        key = _restore_point_key(cluster_id, name)
        if backend.exists(key):
            with backend.open(key, "rb") as handle:
                return json.loads(handle.read())
    return None


def restore_target_resolve(
    *,
    target_time: datetime | None = None,
    target_lsn: str | None = None,
    target_xid: str | None = None,
    target_name: str | None = None,
) -> RestoreTarget:
    """Exactly one target, checked: PitrError naming the parameter when it is malformed."""
    candidates = {"time": target_time, "lsn": target_lsn, "xid": target_xid, "name": target_name}
    given = {kind: value for kind, value in candidates.items() if value not in (None, "")}
    if len(given) != 1:
        raise PitrError("Give exactly one restore target: a time, an LSN, a transaction id or a restore point name.")
    ((kind, value),) = given.items()
    if kind == "time":
        if timezone.is_naive(value):
            raise PitrError("The target time needs a timezone, e.g. 2026-01-27 12:00:00+00.")
        if value > timezone.now():
            raise PitrError(f"The target time {value.isoformat()} is in the future.")
        return RestoreTarget("time", value.isoformat(), time=value)
    if kind == "lsn":
        try:
            return RestoreTarget("lsn", value.upper(), lsn=lsn_parse(value))
        except ValueError as exc:
            raise PitrError(f"{value!r} is not an LSN like 0/3000028.", parameter="target_lsn") from exc
    if kind == "xid":
        if not value.isdigit() or int(value) < 3:  # 0-2 are PostgreSQL's special transaction ids
            raise PitrError(f"{value!r} is not a transaction id (a number from 3).", parameter="target_xid")
        return RestoreTarget("xid", value)
    _check_point_name(value, "target_name")
    marked = _marked_point(value)
    if marked is None:  # a point made by someone else's pg_create_restore_point: the base backup must be given
        return RestoreTarget("name", value)
    return RestoreTarget("name", value, time=datetime.fromisoformat(marked["created_at"]), lsn=lsn_parse(marked["lsn"]))
