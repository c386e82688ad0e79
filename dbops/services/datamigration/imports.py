"""import_data: validates a whole export file, then writes it in one transaction (all or nothing).

Pipeline, per entity in dependency order:
1. read records (dbops.services.datamigration.formats), apply --transform functions;
2. check each record in Python: known fields, types, lengths, required fields (defaults filled in);
3. load the good rows into a temporary staging table (COPY where the engine has it, executemany elsewhere),
   which has the target's columns but no constraints, defaults or sequences;
4. check in SQL: duplicate keys inside the file, conflicts with existing rows (unique constraints;
   existing ids in --mode insert), foreign keys that point at nothing (neither in the file nor in
   the database);
5. if nothing failed and this is not a dry run: optional rollback snapshot, then
   `INSERT … SELECT … FROM staging [ON CONFLICT (id) DO UPDATE]`, then sequences are moved past the
   imported ids. Tables receiving more rows than they hold get their plain indexes and foreign keys
   rebuilt once after the write instead of maintained per row (Connector.index_suspension).

A dry run stops after step 4 and rolls the transaction back: it never touches the real tables, so it
consumes no sequence values and registers no on_commit hooks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models.fields import PositiveIntegerRelDbTypeMixin
from django.utils import timezone

from dbops.engines import Connector, get_connector
from dbops.exceptions import BulkLoadRejected, DataMigrationError, ImportValidationError
from dbops.models import DataTransferRun
from dbops.services.datamigration.entities import ENTITIES, Entity, entity_for_model
from dbops.services.datamigration.formats import FORMATS, read_records
from dbops.services.datamigration.import_fields import Bad, FieldSpec, field_specs
from dbops.services.datamigration.transformations import apply_transformations, resolve_transformations

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
MODES = ("insert", "upsert")
STAGE_CHUNK = 10_000
MAX_PROBLEMS = 1_000
RECNO = "_dbops_recno"


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


class _Stage:
    """The staging table of one entity: the target's columns plus the record number, no constraints."""

    def __init__(self, connector: Connector, entity: Entity, specs: list[FieldSpec], order: int) -> None:
        self.connector, self.entity, self.specs, self.order = connector, entity, specs, order
        self.connection = connection = connector.connection
        quote = connection.ops.quote_name
        self.target = quote(entity.table)
        self.name = quote(f"_dbops_stage_{entity.table}")
        self.columns = [quote(spec.column) for spec in specs]
        self.provided: list[str] | None = None  # the fields the file carries (upsert updates only these)
        self.provided_keys: set[str] = set()
        self.fast_plan: list[tuple] | None = None
        self.buffer: list = []  # COPY text lines where the engine has COPY, value tuples elsewhere
        self.rows = 0
        self.copy = connector.supports_copy
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")
            # Only quoted identifiers from model metadata are interpolated, here and below.
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.name} AS SELECT {', '.join(self.columns)} FROM {self.target} WHERE 1=0"  # noqa: S608
            )
            cursor.execute(f"ALTER TABLE {self.name} ADD COLUMN {quote(RECNO)} bigint")

    def plan(self, record: dict) -> None:
        """The first record decides which fields the file provides; the rest get defaults."""
        self.provided = [
            spec.name for spec in self.specs if spec.name in record and spec.name not in self.entity.import_defaults
        ]
        self.provided_keys = set(self.provided)
        # (field to read, its fast converter) or (None, COPY text of a constant default, per-row default)
        self.fast_plan = []
        for spec in self.specs:
            if spec.name in self.provided_keys:
                self.fast_plan.append((spec.name, spec.fast, None))
            elif spec.name in self.entity.import_defaults:
                self.fast_plan.append((None, None, spec.default))
            elif spec.default is not None:
                self.fast_plan.append((None, self.connector.copy_text(_db_default(spec.default)), None))
            else:  # a required field the file does not provide: every record goes the checking way
                self.fast_plan = None
                return

    def add_fast(self, number: int, record: dict) -> bool:
        """Stages a record whose fields are exactly the provided ones and plainly valid; False otherwise."""
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
        self.buffer.append("\t".join(parts) + "\n")
        if len(self.buffer) >= STAGE_CHUNK:
            self.flush()
        return True

    def add(self, number: int, values: list) -> None:
        if self.copy:
            self.buffer.append("\t".join(map(self.connector.copy_text, values)) + f"\t{number}\n")
        else:  # e.g. SQLite stores datetimes as naive UTC text, the way Django writes them
            adapt = self.connection.ops.adapt_datetimefield_value
            self.buffer.append((*(adapt(v) if isinstance(v, datetime) else v for v in values), number))
        if len(self.buffer) >= STAGE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        quote = self.connection.ops.quote_name
        columns = [*self.columns, quote(RECNO)]
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
            record = int(self.buffer[exc.line - 1].rsplit("\t", 1)[1])
            by_column = {spec.column: spec.name for spec in self.specs}
            field_name = by_column.get(exc.column or "", exc.column or "")
        return Problem(self.order, record, self.entity.name, field_name, str(exc))

    def drop(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")


def _db_default(default: Callable[[], object]):
    value = default()
    return json.dumps(value) if isinstance(value, dict | list) else value


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
        run = DataTransferRun.objects.create(
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
            # Keeps other writers out between validation and the write, so the checks stay true.
            get_connector(using).lock_tables([stage.entity.table for stage in stages.values()], mode="write")
            _validate(stages, mode=mode, using=using)
            result.entities = [_counts(stage) for stage in stages.values()]
            if dry_run:
                for stage in stages.values():
                    stage.drop()
                transaction.set_rollback(True, using=using)  # nothing of the run stays, not even locks
            else:
                if snapshot:
                    from dbops.services.datamigration.snapshots import snapshot_create

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
        _discard_snapshot(result)
        if run is not None:  # bad input changes nothing, not even the run log; the caller reports it
            run.delete()
        raise
    except BaseException as exc:
        _discard_snapshot(result)
        if run is not None:
            run.finish(status=DataTransferRun.Status.FAILED, started=started, error=str(exc))
        raise
    result.seconds = time.perf_counter() - started
    if run is not None:
        run.finish(
            status=DataTransferRun.Status.SUCCEEDED,
            started=started,
            entities=[item.entity for item in result.entities],
            row_counts={item.entity: item.rows for item in result.entities},
            created_counts={item.entity: item.created for item in result.entities},
            updated_counts={item.entity: item.updated for item in result.entities},
        )
    return result


def _discard_snapshot(result: ImportResult) -> None:
    """The import failed and wrote nothing: the snapshot taken for it goes too."""
    if result.snapshot_id is not None:
        from dbops.services.datamigration.snapshots import snapshot_discard

        snapshot_discard(snapshot_id=result.snapshot_id)
        result.snapshot_id = None


def _stage_records(
    records: Iterator[tuple[str, int, dict]], transformations, *, using: str, progress
) -> dict[str, _Stage]:
    connector = get_connector(using)
    now = timezone.now()
    order = {name: index for index, name in enumerate(ENTITIES)}
    stages: dict[str, _Stage] = {}
    problems: list[Problem] = []
    problem_count = 0
    for entity_name, number, record in records:
        stage = stages.get(entity_name)
        if stage is None:
            entity = ENTITIES[entity_name]
            specs = field_specs(entity, now, copy_escapes=connector.copy_escapes)
            stage = stages[entity_name] = _Stage(connector, entity, specs, order[entity_name])
        if not isinstance(record, dict):
            found = [Problem(stage.order, number, entity_name, "", "expected an object of field values")]
        else:
            if transformations:
                record = apply_transformations(transformations, entity_name, dict(record))
                if record is None:
                    continue
            if stage.provided is None:
                stage.plan(record)
            found = [] if stage.add_fast(number, record) else _convert(stage, number, record)
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
    found: list[Problem] = []
    known = {spec.name for spec in stage.specs}
    for name in record:
        if name not in known or name in entity.import_defaults:
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
            except Bad as exc:
                found.append(Problem(stage.order, number, entity.name, spec.name, str(exc)))
                values.append(None)
        elif spec.default is not None:
            values.append(_db_default(spec.default))
        else:
            found.append(Problem(stage.order, number, entity.name, spec.name, "required field is missing"))
            values.append(None)
    if not found:
        stage.add(number, values)
    return found


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
                            lambda row: f"id {row[1]} already exists (the upsert mode updates it)",
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
                if isinstance(model_field, PositiveIntegerRelDbTypeMixin):  # the fast path does not check signs
                    column = quote(model_field.column)
                    report(
                        f"SELECT s.{recno}, s.{column} FROM {stage_table} s WHERE s.{column} < 0",  # noqa: S608
                        stage,
                        model_field.name,
                        lambda row: f"{row[1]} is out of range (must not be negative)",
                    )
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
    indexes = get_connector(using).index_suspension()  # big loads: indexes and foreign keys rebuilt once, after
    indexes.suspend({stage.entity.model: stage.rows for stage in stages.values()})
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
            # No ORDER BY: the staging table was filled in record order and a temporary table is
            # scanned in physical order (no synchronized scans on local buffers), so the sort
            # (spilling to disk past work_mem on big files) bought nothing. WHERE keeps ON CONFLICT
            # from being read as part of the FROM clause.
            cursor.execute(
                f"INSERT INTO {stage.target} ({columns}) SELECT {columns} FROM {stage.name} WHERE true{conflict}"  # noqa: S608
            )
            if progress:
                progress(f"writing {stage.entity.name}", stage.rows, stage.rows)
        indexes.restore()
        models_written = [stage.entity.model for stage in stages.values()]
        for statement in connection.ops.sequence_reset_sql(no_style(), models_written):
            cursor.execute(statement)
