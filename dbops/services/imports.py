"""import_data: validates a whole export file, then writes it in one transaction (all or nothing).

Pipeline, per entity in dependency order:
1. read records (dbops.services.dataformats), apply --transform functions;
2. check each record in Python: known fields, types, lengths, required fields (defaults filled in);
3. load the good rows into a temporary staging table (COPY on PostgreSQL, executemany elsewhere),
   which has the target's columns but no constraints, defaults or sequences;
4. check in SQL: duplicate keys inside the file, conflicts with existing rows (unique constraints;
   existing ids in --mode insert), foreign keys that point at nothing (neither in the file nor in
   the database);
5. if nothing failed and this is not a dry run: optional rollback snapshot, then
   `INSERT … SELECT … FROM staging [ON CONFLICT (id) DO UPDATE]`, then sequences are moved past the
   imported ids.

A dry run stops after step 4 and rolls the transaction back: it never touches the real tables, so it
consumes no sequence values and registers no on_commit hooks.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.contrib.auth.hashers import make_password
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone

from dbops.exceptions import DataMigrationError, ImportValidationError
from dbops.models import DataTransferRun
from dbops.services.dataformats import FORMATS, _Unparsable, read_records
from dbops.services.entities import ENTITIES, Entity, entity_for_model
from dbops.services.transformations import apply_transformations, resolve_transformations

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
MODES = ("insert", "upsert")
STAGE_CHUNK = 10_000
MAX_PROBLEMS = 1_000
RECNO = "_dbops_recno"

# Filled in on import when a file does not carry them (passwords are never exported).
IMPORT_DEFAULTS: dict[tuple[str, str], Callable[[], object]] = {("users", "password"): lambda: make_password(None)}


@dataclass(frozen=True, order=True)
class Problem:
    entity_order: int
    record: int
    entity: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f", field {self.field!r}" if self.field else ""
        return f"{self.entity} record {self.record}{where}: {self.message}"


@dataclass
class EntityImport:
    entity: str
    rows: int = 0
    created: int = 0
    updated: int = 0


@dataclass
class ImportResult:
    format: str
    path: str
    mode: str
    dry_run: bool
    entities: list[EntityImport] = field(default_factory=list)
    seconds: float = 0.0
    run_id: int | None = None
    snapshot_id: str | None = None

    @property
    def total_rows(self) -> int:
        return sum(item.rows for item in self.entities)


class _Bad(ValueError):
    """A value that cannot go into its column; the message says why."""


# --- per-field converters: file value -> Python value ready for the staging table --------------------


def _integer_converter(model_field: models.Field) -> Callable:
    internal = model_field.get_internal_type() if not model_field.is_relation else "BigIntegerField"
    low, high = -(2**63), 2**63 - 1
    if internal in ("IntegerField", "AutoField", "PositiveIntegerField"):
        low, high = -(2**31), 2**31 - 1
    if internal.startswith("Positive") or internal in ("AutoField", "BigAutoField"):
        low = 0 if internal.startswith("Positive") else 1

    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _Bad(f"expected an integer, got {value!r}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _Bad(f"expected an integer, got {value!r}") from None
        if not low <= value <= high:
            raise _Bad(f"{value} is out of range ({low}..{high})")
        return value

    return convert


_TRUE, _FALSE = {"true", "t", "1", "yes"}, {"false", "f", "0", "no"}


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Bad(f"expected true or false, got {value!r}")


def _text_converter(model_field: models.Field) -> Callable:
    max_length = model_field.max_length
    is_email = isinstance(model_field, models.EmailField)

    def convert(value):
        if not isinstance(value, str):
            raise _Bad(f"expected text, got {type(value).__name__} {value!r}")
        if max_length and len(value) > max_length:
            raise _Bad(f"longer than {max_length} characters ({len(value)})")
        if "\x00" in value:
            raise _Bad("contains a NUL character")
        if is_email and value and "@" not in value:
            raise _Bad(f"{value!r} is not an email address")
        return value

    return convert


def _datetime(value):
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Bad(f"expected an ISO 8601 date-time, got {value!r}") from None
    else:
        raise _Bad(f"expected an ISO 8601 date-time, got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ip(value):
    try:
        return str(ipaddress.ip_address(value.strip() if isinstance(value, str) else value))
    except ValueError:
        raise _Bad(f"{value!r} is not an IP address") from None


def _json(value):
    if isinstance(value, _Unparsable):
        raise _Bad(f"not valid JSON: {str(value)[:60]!r}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _converter(model_field: models.Field) -> Callable:
    if model_field.is_relation or isinstance(model_field, models.IntegerField | models.AutoField):
        return _integer_converter(model_field)
    if isinstance(model_field, models.BooleanField):
        return _boolean
    if isinstance(model_field, models.DateTimeField):
        return _datetime
    if isinstance(model_field, models.GenericIPAddressField):
        return _ip
    if isinstance(model_field, models.JSONField):
        return _json
    if isinstance(model_field, models.CharField | models.TextField):
        return _text_converter(model_field)
    raise DataMigrationError(f"import_data cannot read {model_field.get_internal_type()} fields yet")


@dataclass
class _FieldSpec:
    name: str
    column: str
    convert: Callable
    null: bool
    default: Callable[[], object] | None  # None: the field is required


def _field_specs(entity: Entity, now: datetime) -> list[_FieldSpec]:
    specs = []
    for model_field in entity.model._meta.concrete_fields:
        default: Callable[[], object] | None = None
        if (entity.name, model_field.name) in IMPORT_DEFAULTS:
            default = IMPORT_DEFAULTS[(entity.name, model_field.name)]
        elif model_field.has_default():
            default = model_field.get_default
        elif getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
            default = lambda now=now: now  # noqa: E731
        elif model_field.null:
            default = lambda: None  # noqa: E731
        elif model_field.blank and model_field.empty_strings_allowed:
            default = lambda: ""  # noqa: E731
        specs.append(
            _FieldSpec(model_field.name, model_field.column, _converter(model_field), model_field.null, default)
        )
    return specs


# --- staging -------------------------------------------------------------------------------------------

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _Stage:
    """The staging table of one entity: the target's columns plus the record number, no constraints."""

    def __init__(self, connection, entity: Entity, specs: list[_FieldSpec], order: int) -> None:
        self.connection, self.entity, self.specs, self.order = connection, entity, specs, order
        quote = connection.ops.quote_name
        self.target = quote(entity.table)
        self.name = quote(f"_dbops_stage_{entity.table}")
        self.columns = [quote(spec.column) for spec in specs]
        self.provided: list[str] | None = None  # the fields the file carries (upsert updates only these)
        self.buffer: list[tuple] = []
        self.rows = 0
        self.copy = connection.vendor == "postgresql"
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")
            # Only quoted identifiers from model metadata are interpolated, here and below.
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.name} AS SELECT {', '.join(self.columns)} FROM {self.target} WHERE 1=0"  # noqa: S608
            )
            cursor.execute(f"ALTER TABLE {self.name} ADD COLUMN {quote(RECNO)} bigint")

    def add(self, record_number: int, values: list) -> None:
        self.buffer.append((*values, record_number))
        if len(self.buffer) >= STAGE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        quote = self.connection.ops.quote_name
        columns = ", ".join([*self.columns, quote(RECNO)])
        with self.connection.cursor() as cursor:
            if self.copy:
                data = io.StringIO("".join("\t".join(map(_copy_text, row)) + "\n" for row in self.buffer))
                cursor.cursor.copy_expert(f"COPY {self.name} ({columns}) FROM STDIN", data)
            else:
                placeholders = ", ".join(["%s"] * (len(self.columns) + 1))
                cursor.executemany(f"INSERT INTO {self.name} ({columns}) VALUES ({placeholders})", self.buffer)  # noqa: S608
        self.rows += len(self.buffer)
        self.buffer = []

    def drop(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")


# --- the service ---------------------------------------------------------------------------------------


def import_data(
    *,
    input_path: str | Path,
    fmt: str,
    mode: str = "insert",
    dry_run: bool = False,
    snapshot: bool = False,
    transforms: list[str] | None = None,
    using: str = DEFAULT_DB_ALIAS,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Validates every record of the file, then imports all of them in one transaction or none."""
    if fmt not in FORMATS:
        raise DataMigrationError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if mode not in MODES:
        raise DataMigrationError(f"Unknown mode {mode!r}; use insert or upsert.")
    transformations = resolve_transformations(transforms)
    path = Path(input_path).expanduser().resolve()
    records = read_records(fmt, path)  # checks the path before anything else happens
    result = ImportResult(format=fmt, path=str(path), mode=mode, dry_run=dry_run)
    started = time.perf_counter()
    run = None
    if not dry_run:
        run = DataTransferRun.objects.using(using).create(
            kind=DataTransferRun.Kind.IMPORT,
            format=fmt,
            path=str(path),
            mode=mode,
            options={"snapshot": snapshot, "transforms": transforms or []},
            started_at=timezone.now(),
        )
        result.run_id = run.pk
    try:
        with transaction.atomic(using=using):
            stages = _stage_records(records, transformations, using=using, progress=progress)
            _lock(connections[using], [stage.entity for stage in stages.values()])
            _validate(stages, mode=mode, using=using)
            result.entities = [_counts(stage) for stage in stages.values()]
            if dry_run:
                for stage in stages.values():
                    stage.drop()
                transaction.set_rollback(True, using=using)  # nothing of the run stays, not even locks
            else:
                if snapshot:
                    from dbops.services.snapshots import snapshot_create

                    snapshot_row = snapshot_create(
                        entities=[stage.entity.name for stage in stages.values()],
                        using=using,
                        reason=f"before import #{run.pk} of {path.name}",
                        import_run=run,
                    )
                    result.snapshot_id = snapshot_row.id
                _write(stages, mode=mode, using=using, progress=progress)
                transaction.on_commit(
                    lambda: logger.info("import committed", extra={"run": result.run_id, "rows": result.total_rows}),
                    using=using,
                )
                for stage in stages.values():
                    stage.drop()
    except DataMigrationError:
        if run is not None:  # bad input changes nothing, not even the run log; the caller reports it
            run.delete(using=using)
        raise
    except BaseException as exc:
        if run is not None:
            run.finish(using=using, status=DataTransferRun.Status.FAILED, started=started, error=str(exc))
        raise
    result.seconds = time.perf_counter() - started
    if run is not None:
        run.finish(
            using=using,
            status=DataTransferRun.Status.SUCCEEDED,
            started=started,
            entities=[item.entity for item in result.entities],
            row_counts={item.entity: item.rows for item in result.entities},
            created_counts={item.entity: item.created for item in result.entities},
            updated_counts={item.entity: item.updated for item in result.entities},
        )
    return result


def _stage_records(
    records: Iterator[tuple[str, int, dict]], transformations, *, using: str, progress
) -> dict[str, _Stage]:
    connection = connections[using]
    now = timezone.now()
    order = {name: index for index, name in enumerate(ENTITIES)}
    stages: dict[str, _Stage] = {}
    problems: list[Problem] = []
    problem_count = 0
    for entity_name, number, record in records:
        stage = stages.get(entity_name)
        if stage is None:
            entity = ENTITIES[entity_name]
            stage = stages[entity_name] = _Stage(connection, entity, _field_specs(entity, now), order[entity_name])
        if not isinstance(record, dict):
            found = [Problem(stage.order, number, entity_name, "", "expected an object of field values")]
        else:
            if transformations:
                record = apply_transformations(transformations, entity_name, dict(record))
                if record is None:
                    continue
            found = _convert(stage, number, record)
        if found:
            problem_count += len(found)
            if len(problems) < MAX_PROBLEMS:
                problems.extend(found)
        if progress and (stage.rows + len(stage.buffer)) % STAGE_CHUNK == 0:
            progress(f"reading {entity_name}", stage.rows + len(stage.buffer), 0)
    for stage in stages.values():
        stage.flush()
    if problem_count:
        raise ImportValidationError(sorted(problems), total=problem_count)
    return dict(sorted(stages.items(), key=lambda item: item[1].order))


def _convert(stage: _Stage, number: int, record: dict) -> list[Problem]:
    entity = stage.entity
    if stage.provided is None:
        stage.provided = [spec.name for spec in stage.specs if spec.name in record]
    found: list[Problem] = []
    known = {spec.name for spec in stage.specs}
    for name in record:
        if name not in known or (entity.name, name) in IMPORT_DEFAULTS:
            found.append(Problem(stage.order, number, entity.name, name, "unknown field"))
    values = []
    for spec in stage.specs:
        if spec.name in record:
            value = record[spec.name]
            if value is None:
                if not spec.null:
                    found.append(Problem(stage.order, number, entity.name, spec.name, "required (null given)"))
                values.append(None)
                continue
            try:
                values.append(spec.convert(value))
            except _Bad as exc:
                found.append(Problem(stage.order, number, entity.name, spec.name, str(exc)))
                values.append(None)
        elif spec.default is not None:
            value = spec.default()
            values.append(_json(value) if isinstance(value, dict | list) else value)
        else:
            found.append(Problem(stage.order, number, entity.name, spec.name, "required field is missing"))
            values.append(None)
    if not found:
        stage.add(number, values)
    return found


def _lock(connection, entities: list[Entity]) -> None:
    """Keeps other writers out between validation and the write, so the checks stay true."""
    if connection.vendor != "postgresql" or not entities:
        return
    tables = ", ".join(connection.ops.quote_name(entity.table) for entity in entities)
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")


def _unique_keys(model: type[models.Model]) -> list[list[str]]:
    """Every set of columns the model declares unique, the primary key first."""
    opts = model._meta
    keys = [[opts.pk.column]]
    keys += [[f.column] for f in opts.concrete_fields if f.unique and not f.primary_key]
    keys += [[opts.get_field(name).column for name in together] for together in opts.unique_together]
    keys += [[opts.get_field(name).column for name in c.fields] for c in opts.total_unique_constraints]
    return keys


def _validate(stages: dict[str, _Stage], *, mode: str, using: str) -> None:
    connection = connections[using]
    quote = connection.ops.quote_name
    recno = quote(RECNO)
    problems: list[Problem] = []
    with connection.cursor() as cursor:

        def report(sql: str, stage: _Stage, field_name: str, message: Callable[[tuple], str]) -> None:
            cursor.execute(sql + f" ORDER BY 1 LIMIT {MAX_PROBLEMS}")
            for row in cursor.fetchall():
                problems.append(Problem(stage.order, row[0], stage.entity.name, field_name, message(row)))

        for stage in stages.values():
            model, stage_table, target = stage.entity.model, stage.name, stage.target
            pk = quote(model._meta.pk.column)
            for key in _unique_keys(model):
                cols = [quote(column) for column in key]
                label = ", ".join(key)
                same = " AND ".join(f"s.{c} = d.{c}" for c in cols)
                not_null = " AND ".join(f"{c} IS NOT NULL" for c in cols)
                report(
                    f"SELECT s.{recno}, d.first FROM {stage_table} s JOIN (SELECT {', '.join(cols)}, "  # noqa: S608
                    f"MIN({recno}) AS first FROM {stage_table} WHERE {not_null} GROUP BY {', '.join(cols)} "
                    f"HAVING COUNT(*) > 1) d ON {same} WHERE s.{recno} <> d.first",
                    stage,
                    label,
                    lambda row, label=label: f"duplicate {label}: same as record {row[1]} of this file",
                )
                same_target = " AND ".join(f"t.{c} = s.{c}" for c in cols)
                if key == [model._meta.pk.column]:
                    if mode == "insert":
                        report(
                            f"SELECT s.{recno}, s.{pk} FROM {stage_table} s JOIN {target} t ON {same_target}",  # noqa: S608
                            stage,
                            label,
                            lambda row: f"id {row[1]} already exists (use --mode upsert to update it)",
                        )
                    continue
                report(
                    f"SELECT s.{recno}, t.{pk} FROM {stage_table} s JOIN {target} t ON {same_target} "  # noqa: S608
                    f"WHERE t.{pk} <> s.{pk}",
                    stage,
                    label,
                    lambda row, label=label: f"{label} already used by existing row id {row[1]}",
                )
            for model_field in model._meta.concrete_fields:
                if not model_field.is_relation:
                    continue
                related = model_field.related_model
                column = quote(model_field.column)
                related_pk = quote(related._meta.pk.column)
                in_file = ""
                related_entity = entity_for_model(related)
                if related_entity and related_entity.name in stages:
                    in_file = (
                        f" AND NOT EXISTS (SELECT 1 FROM {stages[related_entity.name].name} r "  # noqa: S608
                        f"WHERE r.{related_pk} = s.{column})"
                    )
                report(
                    f"SELECT s.{recno}, s.{column} FROM {stage_table} s WHERE s.{column} IS NOT NULL "  # noqa: S608
                    f"AND NOT EXISTS (SELECT 1 FROM {quote(related._meta.db_table)} t "
                    f"WHERE t.{related_pk} = s.{column})"
                    f"{in_file}",
                    stage,
                    model_field.name,
                    lambda row, related=related: (
                        f"points at {related._meta.object_name} id {row[1]}, "
                        "which is neither in the file nor in the database"
                    ),
                )
    if problems:
        raise ImportValidationError(sorted(problems)[:MAX_PROBLEMS], total=len(problems))


def _counts(stage: _Stage) -> EntityImport:
    quote = stage.connection.ops.quote_name
    pk = quote(stage.entity.model._meta.pk.column)
    with stage.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {stage.name} s WHERE EXISTS (SELECT 1 FROM {stage.target} t WHERE t.{pk} = s.{pk})"  # noqa: S608
        )
        existing = cursor.fetchone()[0]
    return EntityImport(entity=stage.entity.name, rows=stage.rows, created=stage.rows - existing, updated=existing)


def _write(stages: dict[str, _Stage], *, mode: str, using: str, progress) -> None:
    connection = connections[using]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for stage in stages.values():
            columns = ", ".join(stage.columns)
            pk_column = stage.entity.model._meta.pk.column
            conflict = ""
            if mode == "upsert":
                updates = [
                    f"{quote(spec.column)} = EXCLUDED.{quote(spec.column)}"
                    for spec in stage.specs
                    if spec.name in (stage.provided or []) and spec.column != pk_column
                ]
                action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
                conflict = f" ON CONFLICT ({quote(pk_column)}) {action}"
            cursor.execute(
                f"INSERT INTO {stage.target} ({columns}) SELECT {columns} FROM {stage.name} "  # noqa: S608
                f"WHERE 1=1 ORDER BY {quote(RECNO)}{conflict}"
            )
            if progress:
                progress(f"writing {stage.entity.name}", stage.rows, stage.rows)
        models_written = [stage.entity.model for stage in stages.values()]
        for statement in connection.ops.sequence_reset_sql(no_style(), models_written):
            cursor.execute(statement)
