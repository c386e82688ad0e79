"""The staging table of one entity during import_data, and the checks each record passes on its way in.

A staging table has the target's columns and no constraints, plus the record's number in the file and
the set of fields the record carried (`_dbops_fields`, one '1' or '0' per field in field order): an
upsert writes only the fields a record carried, so a record that leaves a field out never blanks it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import models

from dbops.engines import Connector
from dbops.exceptions import BulkLoadRejected, ImportValidationError
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.import_fields import TRUE_WORDS, Bad, FieldSpec

STAGE_CHUNK = 10_000
RECNO = "_dbops_recno"
FIELDS = "_dbops_fields"
AUTO_KEYS = ("AutoField", "BigAutoField", "SmallAutoField")  # primary keys the database numbers itself


def required(spec: FieldSpec) -> bool:
    """A field a record must carry to create a row: no default, and not the automatic id."""
    return spec.default is None and not assigned_key(spec)


def assigned_key(spec: FieldSpec) -> bool:
    """The automatic primary key, which a record may leave out (an INSERT without the id column, a
    json record from another system): the row then gets a fresh id (Stage.ids_assign)."""
    model_field = spec.model_field
    return model_field is not None and model_field.primary_key and model_field.get_internal_type() in AUTO_KEYS


@dataclass(frozen=True, order=True)
class Problem:
    entity_order: float  # ENTITIES.position: dependency order
    record: int
    entity: str
    field: str
    message: str
    privileged: bool = False  # refused only because it grants a privilege

    def __str__(self) -> str:
        where = f", field {self.field!r}" if self.field else ""
        return f"{self.entity} record {self.record}{where}: {self.message}"


def _grants(value) -> bool:
    if value is True or (type(value) is int and value == 1):
        return True
    return isinstance(value, str) and value.strip().lower() in TRUE_WORDS


class Stage:
    """The staging table of one entity: the target's columns plus the record number and its fields."""

    def __init__(
        self, connector: Connector, entity: Entity, specs: list[FieldSpec], order: float, *, create: bool = True
    ) -> None:
        """`create` False: the caller creates the table, under `name` (set_based's CREATE TABLE AS)."""
        self.connector, self.entity, self.specs, self.order = connector, entity, specs, order
        self.connection = connection = connector.connection
        quote = connection.ops.quote_name
        self.target = quote(entity.table)
        self.name = quote(f"_dbops_stage_{entity.table}")
        self.columns = [quote(spec.column) for spec in specs]
        self.known = {spec.name for spec in specs} - set(entity.import_defaults)
        self.provided: list[str] | None = None  # the fields the first record carries (the fast path's)
        self.provided_keys: set[str] = set()
        self.fast_plan: list[tuple] | None = None
        self.fast_mask = ""
        self.buffer: list = []  # COPY text lines where the engine has COPY, value tuples elsewhere
        self.rows = 0
        self.copy = connector.supports_copy
        self.partial = False  # an upsert: records may leave required fields out (convert_record)
        if not create:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")
            # Only quoted identifiers from model metadata are interpolated, here and below.
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.name} AS SELECT {', '.join(self.columns)} FROM {self.target} WHERE 1=0"  # noqa: S608
            )
            cursor.execute(f"ALTER TABLE {self.name} ADD COLUMN {quote(RECNO)} bigint")
            cursor.execute(f"ALTER TABLE {self.name} ADD COLUMN {quote(FIELDS)} varchar({max(len(specs), 1)})")

    def mask(self, record_keys) -> str:
        return "".join("1" if spec.name in record_keys and spec.name in self.known else "0" for spec in self.specs)

    def plan(self, record: dict) -> None:
        """The first record decides which fields the fast path expects; the others go the checking way."""
        self.provided = [spec.name for spec in self.specs if spec.name in record and spec.name in self.known]
        self.provided_keys = set(self.provided)
        self.fast_mask = self.mask(self.provided_keys)
        # (field to read, its fast converter) or (None, COPY text of a constant default, per-row default)
        self.fast_plan = []
        for spec in self.specs:
            if spec.name in self.provided_keys:
                self.fast_plan.append((spec.name, spec.fast, None))
            elif spec.name in self.entity.import_defaults:
                self.fast_plan.append((None, None, spec.default))
            elif spec.default is not None:
                self.fast_plan.append((None, self.connector.copy_text(db_default(spec.default)), None))
            elif assigned_key(spec):
                self.fast_plan.append((None, self.connector.copy_text(None), None))
            else:  # a required field the file does not provide: every record goes the checking way
                self.fast_plan = None
                return

    def privilege_problems(self, number: int, record: dict) -> list[Problem]:
        """What in this record would grant a privilege (refused unless privileges may be imported)."""
        entity = self.entity
        if entity.privileged:
            message = "a membership that grants privileges"
            return [Problem(self.order, number, entity.name, "", message, privileged=True)]
        return [
            Problem(self.order, number, entity.name, name, "grants a privilege", privileged=True)
            for name in entity.privileged_fields
            if _grants(record.get(name))
        ]

    def add_fast(self, number: int, record: dict) -> bool:
        """Stages a record whose fields are exactly the planned ones and plainly valid; False otherwise."""
        if not self.copy or self.fast_plan is None or record.keys() != self.provided_keys:
            return False
        copy_text = self.connector.copy_text
        try:
            parts = [
                fast(record[name]) if name is not None else fast if per_row is None else copy_text(per_row())
                for name, fast, per_row in self.fast_plan
            ]
        except Bad:
            return False
        parts.append(str(number))
        parts.append(self.fast_mask)
        self.buffer.append("\t".join(parts) + "\n")
        if len(self.buffer) >= STAGE_CHUNK:
            self.flush()
        return True

    def add(self, number: int, values: list, mask: str) -> None:
        if self.copy:
            self.buffer.append("\t".join(map(self.connector.copy_text, values)) + f"\t{number}\t{mask}\n")
        else:  # e.g. SQLite stores datetimes as naive UTC text, the way Django writes them
            adapt = self.connection.ops.adapt_datetimefield_value
            self.buffer.append((*(adapt(v) if isinstance(v, datetime) else v for v in values), number, mask))
        if len(self.buffer) >= STAGE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        quote = self.connection.ops.quote_name
        columns = [*self.columns, quote(RECNO), quote(FIELDS)]
        if self.copy:
            try:
                self.connector.copy_into(self.name, columns, "".join(self.buffer))
            except BulkLoadRejected as exc:  # a value the database rejects that the checks passed
                raise ImportValidationError([self._copy_problem(exc)]) from None
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            statement = f"INSERT INTO {self.name} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
            with self.connection.cursor() as cursor:
                cursor.executemany(statement, self.buffer)
        self.rows += len(self.buffer)
        self.buffer = []

    def _copy_problem(self, exc: BulkLoadRejected) -> Problem:
        record, field_name = 0, ""
        if exc.line is not None and exc.line <= len(self.buffer):
            record = int(self.buffer[exc.line - 1].rsplit("\t", 2)[1])
            by_column = {spec.column: spec.name for spec in self.specs}
            field_name = by_column.get(exc.column or "", exc.column or "")
        return Problem(self.order, record, self.entity.name, field_name, str(exc))

    def masks(self, *, existing_only: bool = False) -> dict[str, int]:
        """How many staged records carried each set of fields (of those matching existing rows)."""
        quote = self.connection.ops.quote_name
        where = ""
        if existing_only:
            pk = quote(self.entity.model._meta.pk.column)
            where = f" WHERE EXISTS (SELECT 1 FROM {self.target} t WHERE t.{pk} = s.{pk})"  # noqa: S608
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT s.{quote(FIELDS)}, COUNT(*) FROM {self.name} s{where} GROUP BY 1 ORDER BY 1")  # noqa: S608
            return dict(cursor.fetchall())

    def carried_sql(self, spec: FieldSpec, alias: str = "s") -> str:
        """SQL true where the staged record (the row `alias`) carried this field: its bit in the mask."""
        position = self.specs.index(spec) + 1
        return f"substr({alias}.{self.connection.ops.quote_name(FIELDS)}, {position}, 1) = '1'"

    def left_out(self, mask: str) -> list[str]:
        """The fields a record with this mask did not carry (that files carry at all)."""
        return [spec.name for spec, bit in zip(self.specs, mask, strict=True) if bit == "0" and spec.name in self.known]

    def ids_assign(self) -> int:
        """Fresh ids for the staged records that left the automatic primary key out: past the largest id of
        the table and of the file, plus the record's number (as rekeying gives new rows ids past the
        largest); no sequence value is used, and the sequences move past them after the write. The
        records given one."""
        if not any(assigned_key(spec) for spec in self.specs):
            return 0
        quote = self.connection.ops.quote_name
        pk, recno = quote(self.entity.model._meta.pk.column), quote(RECNO)
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX({pk}) FROM {self.target}")  # noqa: S608
            largest = cursor.fetchone()[0] or 0
            cursor.execute(f"SELECT MAX({pk}) FROM {self.name}")  # noqa: S608
            largest = max(largest, cursor.fetchone()[0] or 0)
            cursor.execute(f"UPDATE {self.name} SET {pk} = %s + {recno} WHERE {pk} IS NULL", [largest])  # noqa: S608
            return cursor.rowcount

    def drop(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")


def db_default(default: Callable[[], object]):
    value = default()
    return json.dumps(value) if isinstance(value, dict | list) else value


def stage_record(stage: Stage, number: int, record: dict, *, allow_privileged: bool) -> list[Problem]:
    """Stages one record (the fast way when it can, else checking every field); the problems it has."""
    if stage.provided is None:
        stage.plan(record)
    found = [] if stage.add_fast(number, record) else convert_record(stage, number, record)
    if not allow_privileged and (stage.entity.privileged or stage.entity.privileged_fields):
        found += stage.privilege_problems(number, record)
    return found


def convert_record(stage: Stage, number: int, record: dict) -> list[Problem]:
    """The checking path: every field converted and checked, each problem named; stages the record if clean."""
    entity = stage.entity
    found: list[Problem] = []
    for name in record:
        if name not in stage.known:
            found.append(Problem(stage.order, number, entity.name, name, "unknown field"))
    values = []
    for spec in stage.specs:
        if spec.name in record:
            value = record[spec.name]
            if value is None and not spec.null and isinstance(spec.model_field, models.JSONField):
                values.append("null")  # a JSON value, as the fast and set-based paths keep it (and export wrote it)
                continue
            if value is None:
                if not spec.null:
                    found.append(Problem(stage.order, number, entity.name, spec.name, "required (null given)"))
                values.append(None)
                continue
            try:
                values.append(spec.convert(value))
            except Bad as exc:
                found.append(Problem(stage.order, number, entity.name, spec.name, str(exc)))
                values.append(None)
        elif spec.default is not None:
            values.append(db_default(spec.default))
        elif assigned_key(spec):
            values.append(None)  # a fresh id once every record is staged
        elif stage.partial:
            values.append(None)  # an upsert's update keeps the row's value (imports._validate, _upsert_values)
        else:
            found.append(Problem(stage.order, number, entity.name, spec.name, "required field is missing"))
            values.append(None)
    if not found:
        stage.add(number, values, stage.mask(record.keys()))
    return found
