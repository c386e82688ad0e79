"""Shared helpers for the data migration tests (export, import, anonymization, snapshots)."""

from __future__ import annotations

import json
from pathlib import Path

from django.db import connection

from dbops.engines import get_connector
from dbops.models import DataTransferRun, Snapshot
from dbops.services.datamigration.entities import ENTITIES
from multipult.core.services.seeding import seed_create

# One role row of an SQL file, its description a literal to fill in: `ROLE_INSERT.format("'x'")`.
ROLE_INSERT = (
    "INSERT INTO core_role (id, name, description, created_at) VALUES (1, 'r', {}, '2025-01-01 00:00:00+00');\n"
)


def seed(scale: float = 0.3, seed: int = 7) -> None:
    seed_create(scale=scale, seed=seed)


def domain_rows() -> dict[str, list[tuple]]:
    """Every exported column of every entity, in primary-key order (passwords are not exported)."""
    return {
        name: list(entity.model.objects.order_by("pk").values_list(*[f.attname for f in entity.fields]))
        for name, entity in ENTITIES.items()
    }


def fingerprint() -> dict[str, object]:
    """Checksums of every domain table plus the dbops bookkeeping rows: equal means nothing changed."""
    connector = get_connector()
    state: dict[str, object] = {
        entity.table: connector.table_checksum(entity.table, "id") for entity in ENTITIES.values()
    }
    state["runs"] = list(DataTransferRun.objects.order_by("pk").values_list("pk", "status"))
    state["snapshots"] = list(Snapshot.objects.order_by("pk").values_list("pk", "status"))
    return state


def sequence_positions() -> dict[str, tuple]:
    positions = {}
    with connection.cursor() as cursor:
        for entity in ENTITIES.values():
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [entity.table])
            sequence = cursor.fetchone()[0]
            cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608
            positions[entity.table] = cursor.fetchone()
    return positions


def wipe_domain() -> None:
    with connection.cursor() as cursor:
        for entity in reversed(list(ENTITIES.values())):
            cursor.execute(f'DELETE FROM "{entity.table}"')  # noqa: S608


EXPORT_HEADER = {"format": "multipult-export", "version": 1}


def user_record(**overrides) -> dict:
    """A valid users record of an export file, with these fields changed."""
    record = {
        "id": 900001, "username": "ok.user", "first_name": "Ok", "last_name": "User", "email": "ok@example.com",
        "is_staff": False, "is_active": True, "is_superuser": False, "date_joined": "2025-01-01T00:00:00+00:00",
        "last_login": None, "phone": "",
    }  # fmt: skip
    record.update(overrides)
    return record


def jsonl_write(path: Path, records: list[tuple[str, dict]], *, header: dict | None = None) -> Path:
    """A jsonl export file of these (entity, record) pairs, with its header and end line."""
    counts: dict[str, int] = {}
    lines = [json.dumps(header or EXPORT_HEADER)]
    for entity, data in records:
        lines.append(json.dumps({"entity": entity, "data": data}))
        counts[entity] = counts.get(entity, 0) + 1
    lines.append(json.dumps({"end": True, "counts": counts}))
    path.write_text("\n".join(lines) + "\n")
    return path
