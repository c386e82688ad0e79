"""sql: `INSERT INTO "table" (columns) VALUES (...);` one per record in dependency order between
BEGIN/COMMIT, standard literals only, so a database shell can run it as is. Read back, with any other
INSERT statements a database shell would accept, by sql_reader (nothing is executed)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.formats import base


def sql_literal(value) -> str:
    if value is None or isinstance(value, bool):
        return "NULL" if value is None else str(value).upper()  # TRUE / FALSE
    # NaN and the infinities go quoted ('nan', 'inf'), as PostgreSQL's float input reads them: bare, no SQL.
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    if isinstance(value, datetime):
        value = value.isoformat(sep=" ")
    elif isinstance(value, dict | list):
        value = base.encode_json(value)
    return "'" + str(value).replace("'", "''") + "'"


def json_literal(value) -> str:
    """A JSON field's value as its JSON text: the string "str" is '"str"', JSON null 'null' (a bare 'str' is no
    JSON, a bare 5 or TRUE is no jsonb to PostgreSQL)."""
    return "'" + base.encode_json(value).replace("'", "''") + "'"


def _nullable_json_literal(value) -> str:
    return "NULL" if value is None else json_literal(value)  # None: the column's NULL (read back alike)


class SqlWriter(base.StreamWriter):
    def __init__(self, target: Path, *, header: dict) -> None:
        super().__init__(target, header=header)
        self.handle.write(f"-- {base.encode_json(self.header)}\nBEGIN;\n")

    def begin_entity(self, entity: Entity) -> None:
        super().begin_entity(entity)
        # NOT NULL columns that are never exported get a placeholder so a database shell can load the file
        # ("!" is Django's unusable password); import_data ignores them.
        self._placeholders = [f'"{name}"' for name in sorted(entity.never_exported)]
        columns = ", ".join([f'"{f.column}"' for f in entity.fields] + self._placeholders)
        self._prefix = f'INSERT INTO "{entity.table}" ({columns}) VALUES ('  # noqa: S608 - identifiers from models
        self._names = entity.field_names
        json_fields = base.json_fields(entity)
        # A JSON field that cannot be NULL holds JSON null when the record has None.
        self._literals = [
            (_nullable_json_literal if field.null else json_literal) if field.name in json_fields else sql_literal
            for field in entity.fields
        ]

    def write(self, record: dict) -> None:
        values = [literal(record.get(name)) for literal, name in zip(self._literals, self._names, strict=True)]
        values += ["'!'"] * len(self._placeholders)
        self.handle.write(self._prefix + ", ".join(values) + ");\n")
        self.counts[self.entity.name] += 1

    def _finish(self) -> None:
        self.handle.write(f"COMMIT;\n-- end {base.encode_json(self.counts)}\n")
        super()._finish()
