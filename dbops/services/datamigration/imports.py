"""import_data: validates a whole export file, then writes it in one transaction (all or nothing).

Pipeline, per entity in dependency order:
1. read records (dbops.services.datamigration.formats), apply --transform functions;
2. check each record in Python: known fields, types, lengths, required fields (defaults filled in);
   (a jsonl file on an engine with supports_json_staging first goes the set-based way instead:
   dbops.services.datamigration.set_based checks and converts it on the server, and only a file it
   has doubts about comes through steps 1-3);
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

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models.fields import PositiveIntegerRelDbTypeMixin
from django.utils import timezone

from dbops.engines import get_connector
from dbops.exceptions import DataMigrationError, ImportValidationError, PrivilegedImportRefused
from dbops.models import DataTransferRun
from dbops.services.datamigration.entities import ENTITIES, entity_for_model
from dbops.services.datamigration.formats import FORMATS, read_records
from dbops.services.datamigration.import_fields import field_specs
from dbops.services.datamigration.rekeying import Rekeying, match_parse
from dbops.services.datamigration.set_based import set_based_stages
from dbops.services.datamigration.staging import FIELDS, RECNO, STAGE_CHUNK, Problem, Stage, required, stage_record
from dbops.services.datamigration.transformations import apply_transformations, resolve_transformations

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
MODES = ("insert", "upsert")
MAX_PROBLEMS = 1_000


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
    warnings: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(item.rows for item in self.entities)


# --- the service ---------------------------------------------------------------------------------------


def import_data(
    *,
    input_path: str | Path,
    fmt: str,
    mode: str = "insert",
    dry_run: bool = False,
    snapshot: bool = False,
    transforms: list[str] | None = None,
    allow_privileged: bool = False,
    match: str = "id",
    using: str = DEFAULT_DB_ALIAS,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Validates every record of the file, then imports all of them in one transaction or none.

    Records that grant privileges (superuser/staff flags, group, permission or role memberships) are
    refused unless `allow_privileged`; an upsert writes only the fields each record carries, and with
    `match` natural or field:NAME finds the rows it updates by their keys, not their ids (rekeying)."""
    if fmt not in FORMATS:
        raise DataMigrationError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if mode not in MODES:
        raise DataMigrationError(f"Unknown mode {mode!r}; use insert or upsert.")
    matching = match_parse(match)
    if matching.kind != "id" and mode != "upsert":
        raise DataMigrationError(f"Matching rows by {matching} only applies to upserts.", parameter="match")
    transformations = resolve_transformations(transforms)
    path = Path(input_path).expanduser().resolve()
    records = read_records(fmt, path)  # checks the path before anything else happens
    result = ImportResult(format=fmt, path=str(path), mode=mode, dry_run=dry_run)
    started = time.perf_counter()
    run = None
    if not dry_run:
        run = DataTransferRun.begin(
            kind=DataTransferRun.Kind.IMPORT,
            format=fmt,
            path=str(path),
            mode=mode,
            options={
                "snapshot": snapshot,
                "transforms": transforms or [],
                "allow_privileged": allow_privileged,
                "match": str(matching),
            },
            started_at=timezone.now(),
        )
        result.run_id = run.pk
    try:
        with transaction.atomic(using=using):
            if not get_connector(using).import_lock():
                raise DataMigrationError(
                    "An import or a rollback is running on this database; try again when it has finished."
                )
            stages = None
            if fmt == "jsonl" and not transformations:  # checked on the server; None: the checking path decides
                stages = set_based_stages(path, allow_privileged=allow_privileged, using=using, progress=progress)
            if stages is None:
                stages = _stage_records(
                    records,
                    transformations,
                    allow_privileged=allow_privileged,
                    partial=mode == "upsert",
                    using=using,
                    progress=progress,
                )
            # Keeps other writers out between validation and the write, so the checks stay true.
            get_connector(using).lock_tables([stage.entity.table for stage in stages.values()], mode="write")
            for stage in stages.values():  # after the lock: the table's largest id stays the largest
                stage.ids_assign()
            rekeying = Rekeying(stages, match=matching, using=using) if matching.kind != "id" else None
            if rekeying:
                rekeying.run()
            if mode == "upsert" and not allow_privileged:
                _refuse_changes_to_privileged_accounts(stages, using=using)
            _validate(stages, mode=mode, using=using)
            result.entities = [_counts(stage) for stage in stages.values()]
            if mode == "upsert":
                result.warnings = [warning for stage in stages.values() for warning in _kept_fields(stage)]
                result.warnings += rekeying.warnings if rekeying else []
            if dry_run:
                for stage in stages.values():
                    stage.drop()
                if rekeying:
                    rekeying.drop()
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
                if result.snapshot_id:
                    from dbops.services.datamigration.snapshots import snapshot_seal

                    snapshot_seal(snapshot_id=result.snapshot_id, using=using)
                transaction.on_commit(
                    lambda: logger.info("import committed", extra={"run": result.run_id, "rows": result.total_rows}),
                    using=using,
                )
                for stage in stages.values():
                    stage.drop()
                if rekeying:
                    rekeying.drop()
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
    records: Iterator[tuple[str, int, dict]],
    transformations,
    *,
    allow_privileged: bool,
    partial: bool,
    using: str,
    progress,
) -> dict[str, Stage]:
    """Every record converted and staged, or ImportValidationError naming each problem. `partial` (an
    upsert): a record may leave a required field out; _validate refuses it only where it creates a row."""
    connector = get_connector(using)
    now = timezone.now()
    stages: dict[str, Stage] = {}
    problems: list[Problem] = []
    problem_count = 0
    for entity_name, number, record in records:
        stage = stages.get(entity_name)
        if stage is None:
            entity = ENTITIES[entity_name]
            specs = field_specs(entity, now, copy_escapes=connector.copy_escapes)
            stage = stages[entity_name] = Stage(connector, entity, specs, ENTITIES.position(entity))
            stage.partial = partial
        if not isinstance(record, dict):
            found = [Problem(stage.order, number, entity_name, "", "expected an object of field values")]
        else:
            if transformations:
                record = apply_transformations(transformations, entity_name, dict(record), number=number)
                if record is None:
                    continue
            found = stage_record(stage, number, record, allow_privileged=allow_privileged)
        if found:
            problem_count += len(found)
            if len(problems) < MAX_PROBLEMS:
                problems.extend(found)
        if progress and (stage.rows + len(stage.buffer)) % STAGE_CHUNK == 0:
            progress(f"reading {entity_name}", stage.rows + len(stage.buffer), 0)
    for stage in stages.values():
        stage.flush()
    if problem_count:
        refused = PrivilegedImportRefused if any(problem.privileged for problem in problems) else ImportValidationError
        raise refused(sorted(problems), total=problem_count)
    return dict(sorted(stages.items(), key=lambda item: item[1].order))


def _unique_keys(model: type[models.Model]) -> list[list[str]]:
    """Every set of columns the model declares unique, the primary key first."""
    opts = model._meta
    keys = [[opts.pk.column]]
    keys += [[f.column] for f in opts.concrete_fields if f.unique and not f.primary_key]
    keys += [[opts.get_field(name).column for name in together] for together in opts.unique_together]
    keys += [[opts.get_field(name).column for name in c.fields] for c in opts.total_unique_constraints]
    return keys


def _refuse_changes_to_privileged_accounts(stages: dict[str, Stage], *, using: str) -> None:
    """An upsert that changes a staff or superuser account that stays one (its email or username: a password
    reset then takes it over) is a privileged import, as granting the flags is. A record that changes
    nothing passes, and so does one that demotes the account."""
    connection = connections[using]
    quote = connection.ops.quote_name
    problems: list[Problem] = []
    with connection.cursor() as cursor:
        for stage in stages.values():
            flags = [spec for spec in stage.specs if spec.name in stage.entity.privileged_fields]
            if not flags:
                continue
            pk = quote(stage.entity.model._meta.pk.column)
            changed = [
                f"({stage.carried_sql(spec)} AND s.{column} IS DISTINCT FROM t.{column})"
                for spec, column in zip(stage.specs, stage.columns, strict=True)
                if column != pk
            ]
            if not changed:
                continue
            # Staff or superuser as the import leaves it: a record that demotes the account changes nothing it
            # could use (granting a flag is refused on its own)
            powerful = " OR ".join(
                f"(CASE WHEN {stage.carried_sql(spec)} THEN s.{quote(spec.column)} ELSE t.{quote(spec.column)} END)"
                " = true"
                for spec in flags
            )
            cursor.execute(
                f"SELECT s.{quote(RECNO)} FROM {stage.name} s JOIN {stage.target} t ON t.{pk} = s.{pk} "  # noqa: S608
                f"WHERE ({powerful}) AND ({' OR '.join(changed)}) ORDER BY 1 LIMIT {MAX_PROBLEMS}"
            )
            problems += [
                Problem(stage.order, number, stage.entity.name, "", "changes a staff or superuser account", True)
                for (number,) in cursor.fetchall()
            ]
    if problems:
        raise PrivilegedImportRefused(problems)


def _validate(stages: dict[str, Stage], *, mode: str, using: str) -> None:
    connection = connections[using]
    quote = connection.ops.quote_name
    recno = quote(RECNO)
    problems: list[Problem] = []
    with connection.cursor() as cursor:

        def report(sql: str, stage: Stage, field_name: str, message: Callable[[tuple], str]) -> None:
            cursor.execute(sql + f" ORDER BY 1 LIMIT {MAX_PROBLEMS}")
            for row in cursor.fetchall():
                problems.append(Problem(stage.order, row[0], stage.entity.name, field_name, message(row)))

        for stage in stages.values():
            model, stage_table, target = stage.entity.model, stage.name, stage.target
            pk = quote(model._meta.pk.column)
            if mode == "upsert":  # a record that leaves a required field out may update a row, not create one
                for spec in stage.specs:
                    if spec.name in stage.known and required(spec):
                        report(
                            f"SELECT s.{recno} FROM {stage_table} s WHERE NOT ({stage.carried_sql(spec)}) "  # noqa: S608
                            f"AND NOT EXISTS (SELECT 1 FROM {target} t WHERE t.{pk} = s.{pk})",
                            stage,
                            spec.name,
                            lambda row: "required field is missing (the record creates a row)",
                        )
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


def _counts(stage: Stage) -> EntityImport:
    quote = stage.connection.ops.quote_name
    pk = quote(stage.entity.model._meta.pk.column)
    with stage.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {stage.name} s WHERE EXISTS (SELECT 1 FROM {stage.target} t WHERE t.{pk} = s.{pk})"  # noqa: S608
        )
        existing = cursor.fetchone()[0]
    return EntityImport(entity=stage.entity.name, rows=stage.rows, created=stage.rows - existing, updated=existing)


def _upsert_values(stage: Stage, mask: str) -> str:
    """The staged columns of records with this mask; a required column they leave out comes from the row
    they update (staged NULL, it would fail NOT NULL before ON CONFLICT could make the insert an update)."""
    quote = stage.connection.ops.quote_name
    pk = quote(stage.entity.model._meta.pk.column)
    values = []
    for spec, carried, column in zip(stage.specs, mask, stage.columns, strict=True):
        if carried == "0" and required(spec):
            values.append(f"(SELECT t.{column} FROM {stage.target} t WHERE t.{pk} = s.{pk})")  # noqa: S608
        else:
            values.append(f"s.{column}")
    return ", ".join(values)


def _upsert_conflict(stage: Stage, mask: str) -> str:
    quote = stage.connection.ops.quote_name
    pk_column = stage.entity.model._meta.pk.column
    updates = [
        f"{quote(spec.column)} = EXCLUDED.{quote(spec.column)}"
        for spec, carried in zip(stage.specs, mask, strict=True)
        if carried == "1" and spec.column != pk_column
    ]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return f" ON CONFLICT ({quote(pk_column)}) {action}"


def _kept_fields(stage: Stage) -> list[str]:
    """Warnings for existing rows updated from records that leave fields out (those fields are kept)."""
    warnings = []
    for mask, count in stage.masks(existing_only=True).items():
        left_out = stage.left_out(mask)
        if left_out:
            warnings.append(
                f"{stage.entity.name}: {count:,} existing row(s) updated from records without "
                f"{', '.join(left_out)}; those fields keep their current values."
            )
    return warnings


def _write(stages: dict[str, Stage], *, mode: str, using: str, progress) -> None:
    connection = connections[using]
    quote = connection.ops.quote_name
    indexes = get_connector(using).index_suspension()  # big loads: indexes and foreign keys rebuilt once, after
    indexes.suspend({stage.entity.model: stage.rows for stage in stages.values()})
    with connection.cursor() as cursor:
        for stage in stages.values():
            columns = ", ".join(stage.columns)
            # No ORDER BY: the staging table was filled in record order and a temporary table is
            # scanned in physical order (no synchronized scans on local buffers), so the sort
            # (spilling to disk past work_mem on big files) bought nothing. WHERE keeps ON CONFLICT
            # from being read as part of the FROM clause.
            insert = f"INSERT INTO {stage.target} ({columns}) SELECT {columns} FROM {stage.name} WHERE "  # noqa: S608
            if mode != "upsert":
                cursor.execute(insert + "true")
            else:  # one statement per set of fields the records carry: each updates only its own fields
                masks = list(stage.masks())
                for mask in masks:
                    only_these = f"{quote(FIELDS)} = %s" if len(masks) > 1 else "true"
                    selected = _upsert_values(stage, mask)
                    statement = f"INSERT INTO {stage.target} ({columns}) SELECT {selected} FROM {stage.name} s WHERE "  # noqa: S608, E501
                    cursor.execute(
                        statement + only_these + _upsert_conflict(stage, mask), [mask] if len(masks) > 1 else None
                    )
            if progress:
                progress(f"writing {stage.entity.name}", stage.rows, stage.rows)
        indexes.restore()
        models_written = [stage.entity.model for stage in stages.values()]
        for statement in connection.ops.sequence_reset_sql(no_style(), models_written):
            cursor.execute(statement)
