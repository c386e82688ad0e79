"""import_data's set-based path: a jsonl file's records go to the server as raw JSON (COPY), and the
type, length, range, required-field and privilege checks run there as a few set-based queries over
each entity's raw table; the typed staging table is then filled with one INSERT … SELECT. Python only
splits lines, and runs the model's validators and choices on the fields that have them.

The checks accept only what the checking path (staging.convert_record) accepts too. When any record
is doubtful, or the server rejects anything, the whole attempt is rolled back to its savepoint and
the caller reads the file again the checking way, which names each problem exactly: the outcome, and
every refusal, is the same as without this path; only its speed differs.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.db import DatabaseError, InterfaceError, OperationalError, models, transaction
from django.utils import timezone

from dbops.engines import Connector, get_connector
from dbops.engines.json_fields import JsonField
from dbops.exceptions import ImportFormatError, ImportValidationError
from dbops.services.datamigration.entities import ENTITIES, Entity
from dbops.services.datamigration.formats.base import json_loads
from dbops.services.datamigration.formats.jsonl import read_jsonl_raw
from dbops.services.datamigration.import_fields import Bad, FieldSpec, field_specs, integer_range, value_validators
from dbops.services.datamigration.staging import FIELDS, RECNO, Stage, db_default, stage_record

# A number in exponent form: jsonb would read 1e2 as the integer 100, which the checking path refuses.
EXPONENT = re.compile(r"[:,\[]\s*-?\d+(?:\.\d+)?[eE][+-]?\d+\s*[,}\]]")
CHUNK_BYTES = 4 << 20  # raw JSON sent per COPY: memory stays flat whatever the file's size


class _Doubtful(Exception):
    """A record the set-based checks do not plainly accept: the checking path takes the file."""


def _kind(model_field: models.Field) -> str | None:
    if model_field.is_relation or isinstance(model_field, models.IntegerField | models.AutoField):
        return "integer"
    for kind, types in (
        ("boolean", models.BooleanField),
        ("datetime", models.DateTimeField),
        ("date", models.DateField),  # after DateTimeField, its subclass
        ("float", models.FloatField),
        ("decimal", models.DecimalField),
        ("uuid", models.UUIDField),
        ("ip", models.GenericIPAddressField),
        ("json", models.JSONField),
        ("text", models.CharField | models.TextField),
    ):
        if isinstance(model_field, types):
            return kind
    return None


def _json_fields(entity: Entity, specs: list[FieldSpec], *, allow_privileged: bool) -> list[JsonField] | None:
    """How the server reads each field, or None when this entity needs the checking path."""
    if entity.import_defaults or (entity.privileged and not allow_privileged):
        return None
    fields = []
    for spec in specs:
        kind = _kind(spec.model_field)
        if kind is None or (kind == "decimal" and spec.check is not None):  # its validators expect a Decimal
            return None
        low, high = integer_range(spec.model_field) if kind == "integer" else (None, None)
        fields.append(
            JsonField(
                column=spec.column,
                key=spec.name,
                kind=kind,
                null=spec.null,
                max_length=spec.model_field.max_length if kind == "text" else None,
                low=low,
                high=high,
                max_digits=spec.model_field.max_digits if kind == "decimal" else None,
                decimal_places=spec.model_field.decimal_places if kind == "decimal" else None,
                choices=_text_choices(spec.model_field) if kind == "text" else None,
                blank=spec.model_field.blank,
                privileged=not allow_privileged and spec.name in entity.privileged_fields,
            )
        )
    return fields


def _text_choices(model_field: models.Field) -> tuple[str, ...] | None:
    values = [value for value, _ in model_field.flatchoices] if model_field.choices else []
    return tuple(values) if values and all(isinstance(value, str) for value in values) else None


def _checked_in_python(spec: FieldSpec, json_field: JsonField) -> bool:
    """Validators are Python callables; text choices the server checks itself."""
    if spec.check is None:
        return False
    return bool(value_validators(spec.model_field)) or json_field.choices is None


class _RawEntity:
    def __init__(self, connector: Connector, entity: Entity, now, copier, *, allow_privileged: bool) -> None:
        specs = field_specs(entity, now, copy_escapes=connector.copy_escapes)
        self.allow_privileged = allow_privileged
        fields = _json_fields(entity, specs, allow_privileged=allow_privileged)
        # the staging table: made from the raw one at the end (finish), or filled in Python
        self.stage = Stage(connector, entity, specs, ENTITIES.position(entity), create=fields is None)
        self.sql = None  # an entity the server cannot check (e.g. per-row import defaults) is read in Python
        if fields is None:
            return
        defaults = {spec.name: db_default(spec.default) for spec in specs if spec.default is not None}
        self.sql = connector.json_staging(entity.table, fields, defaults, copier)
        self.sql.create()
        self.checked = [spec for spec, field in zip(specs, fields, strict=True) if _checked_in_python(spec, field)]
        self.buffer: list[str] = []
        self.size = 0
        self.count = 0  # raw records sent: the staging table must end with as many

    def add(self, number: int, data: str) -> None:
        if self.sql is None:
            try:
                record = json_loads(data)
            except (ValueError, RecursionError):
                raise _Doubtful(self.stage.entity.name) from None
            if not isinstance(record, dict) or stage_record(
                self.stage, number, record, allow_privileged=self.allow_privileged
            ):
                raise _Doubtful(self.stage.entity.name)
            return
        if EXPONENT.search(data):
            raise _Doubtful(self.stage.entity.name)
        self.buffer.append(f"{number}\x02{data}\n")
        self.count += 1
        self.size += len(data)
        if self.size >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.sql is not None and self.buffer:
            self.sql.copy("".join(self.buffer))
            self.buffer, self.size = [], 0

    def finish(self) -> Stage:
        """After flush() and the copier's wait()."""
        if self.sql is None:
            self.stage.flush()
            return self.stage
        columns = [spec.column for spec in self.stage.specs]
        self.stage.rows = self.sql.stage_create(self.stage.name, columns, RECNO, FIELDS)
        if self.stage.rows != self.count:  # the insert left doubtful records out; the savepoint undoes it
            raise _Doubtful(self.stage.entity.name)
        # The model's validators and choices: Python callables, on those fields only, and only once every
        # value has passed the type checks (a validator may not expect a number where text belongs).
        for spec in self.checked:
            for _number, text in self.sql.values(spec.name):
                try:
                    spec.check(json_loads(text))
                except Bad:
                    raise _Doubtful(self.stage.entity.name) from None
        self.sql.drop()
        return self.stage


def set_based_stages(path: Path, *, allow_privileged: bool, using: str, progress) -> dict[str, Stage] | None:
    """Every entity of the jsonl file staged and checked on the server, or None (nothing left behind)
    when a record needs the checking path."""
    connector = get_connector(using)
    if not connector.supports_json_staging:
        return None
    now = timezone.now()
    entities: dict[str, _RawEntity] = {}
    try:
        # the copier's thread ends before the savepoint is released or rolled back
        with transaction.atomic(using=using), connector.json_copier() as copier:
            for name, number, data in read_jsonl_raw(path):
                raw = entities.get(name)
                if raw is None or raw.sql is None:
                    copier.wait()  # the connection is this thread's again: the COPYs are done
                if raw is None:
                    raw = entities[name] = _RawEntity(
                        connector, ENTITIES[name], now, copier, allow_privileged=allow_privileged
                    )
                raw.add(number, data)
                if progress and number % 100_000 == 0:
                    progress(f"reading {name}", number, 0)
            for raw in entities.values():
                raw.flush()
            copier.wait()
            stages = {name: raw.finish() for name, raw in entities.items()}
    except (InterfaceError, OperationalError):  # the connection, not the file: the checking path cannot help
        raise
    except (_Doubtful, DatabaseError, ImportValidationError, ImportFormatError, UnicodeEncodeError):
        # the checking path names it (UnicodeEncodeError: a lone surrogate the driver cannot send)
        return None
    return dict(sorted(stages.items(), key=lambda item: item[1].order))
