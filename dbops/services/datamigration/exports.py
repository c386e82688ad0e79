"""export_data: streams the chosen entities out of the database into a json/jsonl/csv/sql file.

Rows are read through a server-side cursor where the engine has them (`QuerySet.iterator`), in one
consistent-read transaction so foreign keys agree across entities, and written as they arrive:
memory stays flat whatever the table sizes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

from django.apps import apps
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models import ExpressionWrapper, F, Q, QuerySet
from django.utils import timezone

from dbops.engines import get_connector
from dbops.exceptions import DataMigrationError, ExportWriteError
from dbops.models import DataTransferRun
from dbops.services.datamigration.anonymization import Anonymizer, ColumnRule, check_rules, rules_explain
from dbops.services.datamigration.entities import ENTITIES, Entity, resolve_entities
from dbops.services.datamigration.formats import FORMATS, encode_json, open_writer
from dbops.services.datamigration.formats.base import ExactJsonDecoder
from dbops.services.datamigration.k_anonymity import k_anonymity_report
from dbops.services.datamigration.masked_copy import (
    BackgroundScan,
    MaskedColumns,
    masked_columns,
    masked_copy,
    no_rows_copy,
    remember_identities,
    scan_kept_values,
    sql_masking_for,
)
from dbops.services.datamigration.masking_rules import PERSON_KINDS
from dbops.services.datamigration.pii_scan import PiiScanner
from dbops.services.datamigration.transformations import apply_transformations, resolve_transformations

ProgressCallback = Callable[[str, int, int], None]
CHUNK_ROWS = 5_000
ESTIMATE_SAMPLE = 200
_WHERE = re.compile(r"^\s*(?:(\w+)\.)?(\w+)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$")
_LOOKUPS = {"=": "exact", "!=": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


@dataclass
class EntityExport:
    entity: str
    rows: int
    estimated_bytes: int | None = None


@dataclass
class ExportResult:
    format: str
    path: str
    dry_run: bool
    entities: list[EntityExport] = field(default_factory=list)
    size_bytes: int | None = None
    seconds: float = 0.0
    run_id: int | None = None
    anonymized: bool = False
    k_anonymity: dict[str, int] | None = None  # the smallest group of each entity with quasi-identifiers
    scanned_strings: int = 0

    @property
    def total_rows(self) -> int:
        return sum(item.rows for item in self.entities)


def parse_where(expressions: list[str], selected: list[Entity]) -> dict[str, list[tuple[Q, bool]]]:
    """`[entity.]field OP value` (OP one of = != > >= < <=) into per-entity Q objects.

    Without an entity prefix a filter applies to every selected entity that has the field."""
    filters: dict[str, list[tuple[Q, bool]]] = {}
    by_name = {entity.name: entity for entity in selected}
    for expression in expressions or []:
        match = _WHERE.match(expression)
        if not match:
            raise DataMigrationError(
                f"The filter {expression!r} is not [entity.]field OP value, OP one of = != > >= < <=.",
                parameter="where",
            )
        entity_name, field_name, operator, raw_value = match.groups()
        if entity_name and entity_name not in by_name:
            raise DataMigrationError(
                f"The filter {expression!r} names {entity_name!r}, which is not among the exported entities.",
                parameter="where",
            )
        targets = [by_name[entity_name]] if entity_name else selected
        applied = False
        for entity in targets:
            model_field = next((f for f in entity.fields if f.name == field_name), None)
            if model_field is None:
                continue
            try:
                value = None if raw_value.lower() == "null" else _where_value(model_field, raw_value.strip("'\""))
            except ValidationError as exc:
                raise DataMigrationError(
                    f"The filter {expression!r}: {'; '.join(exc.messages)}", parameter="where"
                ) from None
            lookup = (
                f"{model_field.attname}__isnull" if value is None else f"{model_field.attname}__{_LOOKUPS[operator]}"
            )
            condition = Q(**{lookup: True if value is None else value})
            filters.setdefault(entity.name, []).append((condition, operator == "!="))
            applied = True
        if not applied:
            raise DataMigrationError(
                f"The filter {expression!r}: no exported entity has a field {field_name!r}.", parameter="where"
            )
    return filters


def _where_withheld(expression: str) -> str:
    """The filter as the run log keeps it: field and operator, not the value (an email, a name)."""
    match = _WHERE.match(expression)
    if not match:
        return "(a filter)"
    entity_name, field_name, operator, _value = match.groups()
    return f"{entity_name + '.' if entity_name else ''}{field_name}{operator}…"


def _where_value(model_field, raw: str):
    if isinstance(model_field, models.BooleanField) and raw.lower() in ("true", "false", "t", "f", "yes", "no"):
        return raw.lower() in ("true", "t", "yes")
    return model_field.to_python(raw)


def _since_datetime(since: date | datetime | None) -> datetime | None:
    if since is None:
        return None
    if not isinstance(since, datetime):
        since = datetime.combine(since, dtime.min)
    return since if timezone.is_aware(since) else timezone.make_aware(since, UTC)


def export_querysets(
    *, selected: list[Entity], where: list[str] | None, since: date | datetime | None, using: str
) -> dict[str, QuerySet]:
    filters = parse_where(where or [], selected)
    since_at = _since_datetime(since)
    querysets: dict[str, QuerySet] = {}
    for entity in selected:
        queryset = entity.model._default_manager.using(using).all()
        for condition, negate in filters.get(entity.name, []):
            queryset = queryset.exclude(condition) if negate else queryset.filter(condition)
        if since_at is not None and entity.since_field:
            queryset = queryset.filter(**{f"{entity.since_field}__gte": since_at})
        if entity.parent and entity.parent[1] in querysets:
            fk_name, parent_name = entity.parent
            queryset = queryset.filter(**{f"{fk_name}__in": querysets[parent_name].values("pk")})
        querysets[entity.name] = queryset.order_by("pk")
    return querysets


def _rows(queryset: QuerySet, entity: Entity) -> tuple[list[str], object]:
    columns = []
    for model_field in entity.fields:
        if isinstance(model_field, models.JSONField) and model_field.decoder is None:  # a project decoder stays
            exact = models.JSONField(decoder=ExactJsonDecoder)  # Django's reads 1.10 as the float 1.1
            alias = f"_dbops_exact_{model_field.attname}"
            queryset = queryset.annotate(**{alias: ExpressionWrapper(F(model_field.attname), output_field=exact)})
            columns.append(alias)
        else:
            columns.append(model_field.attname)
    return entity.field_names, queryset.values_list(*columns).iterator(chunk_size=CHUNK_ROWS)


def export_data(
    *,
    entities: list[str] | str | None,
    output: str | Path,
    fmt: str,
    anonymize: bool = False,
    dry_run: bool = False,
    where: list[str] | None = None,
    since: date | datetime | None = None,
    transforms: list[str] | None = None,
    k_anonymity: int | None = None,
    allow_pii_in: list[str] | None = None,
    using: str = DEFAULT_DB_ALIAS,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Exports the entities (plus, for json/jsonl, the ones needed to import them again).

    Anonymized, every column goes through its masking rule and what is kept is scanned for personal data
    (fields in `allow_pii_in`, `entity.field` or `field`, are not); with `k_anonymity` the export is
    refused when a group of records sharing their quasi-identifiers is smaller. Refused: nothing written."""
    if fmt not in FORMATS:
        raise DataMigrationError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    selected = resolve_entities(entities, with_companions=fmt in ("json", "jsonl"))
    transformations = resolve_transformations(transforms)
    anonymizer = scanner = None
    identity_sources: list[Entity] = []
    if anonymize:
        check_rules(selected)
        _check_allowed_fields(allow_pii_in or (), selected)
        anonymizer, scanner = Anonymizer(), PiiScanner(allow=allow_pii_in or ())
        identity_sources = _identity_sources(selected)
        for entity in [*selected, *identity_sources]:
            scanner.prepare(entity)
    groups = k_anonymity_report(k=k_anonymity, selected=selected) if k_anonymity is not None else None
    target = Path(output).expanduser().resolve()
    if not dry_run and not target.parent.is_dir():
        raise DataMigrationError(f"{output}: folder {target.parent} does not exist.", parameter="output")
    if not dry_run and fmt == "csv" and target.suffix.lower() != ".zip" and target.exists():
        raise DataMigrationError(
            f"{output} already exists; a CSV export into a folder needs a new folder name.", parameter="output"
        )
    if not dry_run and target.is_dir():
        raise DataMigrationError(f"{output} is a folder; give the name of the file to write.", parameter="output")
    querysets = export_querysets(selected=selected, where=where, since=since, using=using)
    result = ExportResult(format=fmt, path=str(target), dry_run=dry_run, anonymized=anonymize)
    if dry_run:
        for entity in selected:
            result.entities.append(_estimate(entity, querysets[entity.name], anonymizer))
        return result

    started = time.perf_counter()
    header = {
        "created_at": timezone.now().isoformat(),
        "contents": [entity.name for entity in selected],
        "anonymized": anonymize,
    }
    try:  # before the run is recorded: a folder that takes no file is bad input, not a failed run
        writer = open_writer(fmt, target, header=header)
    except OSError as exc:
        raise DataMigrationError(
            f"{output}: cannot write into {target.parent}: {exc.strerror or exc}.", parameter="output"
        ) from None
    try:
        run = DataTransferRun.begin(
            kind=DataTransferRun.Kind.EXPORT,
            format=fmt,
            path=str(target),
            entities=[entity.name for entity in selected],
            options={
                "anonymize": anonymize,
                "where": [_where_withheld(expression) for expression in where or []],
                "since": str(since or ""),
                "transforms": transforms or [],
            },
            started_at=timezone.now(),
        )
    except BaseException:
        writer.abort()
        raise
    result.run_id = run.pk
    # Plain jsonl where the engine has COPY: the server renders each row as JSON and streams it to the file.
    connector = get_connector(using)
    server_rendered = fmt == "jsonl" and not transformations and not groups and connector.supports_copy
    fast_copy = server_rendered and not anonymizer
    server_masking = server_rendered and anonymizer is not None
    try:
        # The rules in SQL, the kept text scanned by distinct value (None: the entity goes row by row).
        masking = sql_masking_for(connector, anonymizer) if server_masking else None
        masked_by_entity = {
            entity.name: masked_columns(connector, entity, masking, anonymizer, scanner) for entity in selected
        }
        with _ConsistentRead(using) as consistent_read, ExitStack() as scanning:
            for entity in identity_sources:  # every real identity first, whatever the order, entities or filters
                remember_identities(scanner, entity.model._default_manager.using(using).all(), entity)
            background = _background_scan(consistent_read, connector, scanner, querysets, selected, masked_by_entity)
            if background is not None:
                scanning.callback(background.cancel)  # ends before the shared read does
            for entity in selected:
                queryset = querysets[entity.name]
                total = queryset.count() if progress else 0
                writer.begin_entity(entity)
                masked = masked_by_entity[entity.name]
                if masked is not None and background is None:
                    scan_kept_values(scanner, queryset, entity)
                if fast_copy or masked is not None:
                    copy = (
                        masked_copy(connector, queryset, entity, masked, writer.copy_prefix)
                        if masked is not None
                        else _copy_json_rows(connector, queryset, entity, writer.copy_prefix)
                    )
                    writer.write_copy(copy)
                    writer.end_entity()
                    if background is not None:
                        background.check()  # a hit found meanwhile: no more copying
                    if progress:
                        progress(entity.name, writer.counts[entity.name], max(total, writer.counts[entity.name]))
                    continue
                _refuse_json_too_deep(connector, queryset, entity)
                names, rows = _rows(queryset, entity)
                try:
                    for row in rows:
                        record = dict(zip(names, row, strict=True))
                        if anonymizer:
                            anonymizer.apply(entity.name, record)
                        if transformations:
                            record = apply_transformations(
                                transformations, entity.name, record, number=writer.counts[entity.name] + 1
                            )
                            if record is None:
                                continue
                        if scanner:
                            scanner.scan(entity.name, writer.counts[entity.name] + 1, record)
                        if groups:
                            groups.add(entity.name, record)
                        writer.write(record)
                        if progress and writer.counts[entity.name] % CHUNK_ROWS == 0:
                            progress(entity.name, writer.counts[entity.name], total)
                except RecursionError:  # nested too deep where the engine cannot tell beforehand
                    raise DataMigrationError(
                        f"{entity.name} record {writer.counts[entity.name] + 1}: a JSON value nests deeper than "
                        "Python reads."
                    ) from None
                finally:
                    rows.close()  # closes the server-side cursor now, while its transaction is still open
                writer.end_entity()
                if progress:
                    progress(entity.name, writer.counts[entity.name], max(total, writer.counts[entity.name]))
            if background is not None:
                background.finish()
        if groups:
            groups.check()
        result.size_bytes = writer.finish()
    except DataMigrationError:  # refused (personal data found, not k-anonymous): nothing written, no run kept
        writer.abort()
        run.delete()
        raise
    except BaseException as exc:
        writer.abort()
        run.finish(status=DataTransferRun.Status.FAILED, error=str(exc), started=started)
        if isinstance(exc, OSError):  # the disk or the folder, not the data: one line, not a traceback
            raise ExportWriteError(f"Export to {target} failed: {exc.strerror or exc}; nothing was written.") from exc
        raise
    finally:
        if server_masking:
            connector.sql_masking_end()
    result.entities = [EntityExport(entity=name, rows=count) for name, count in writer.counts.items()]
    result.k_anonymity = groups.smallest() if groups else None
    result.scanned_strings = scanner.strings if scanner else 0
    result.seconds = time.perf_counter() - started
    run.finish(
        status=DataTransferRun.Status.SUCCEEDED,
        started=started,
        row_counts=dict(writer.counts),
        size_bytes=result.size_bytes,
    )
    return result


def export_rules_explain(*, entities: list[str] | str | None, fmt: str) -> list[ColumnRule]:
    """The masking rule of every column an anonymized export of these entities would write."""
    return rules_explain(resolve_entities(entities, with_companions=fmt in ("json", "jsonl")))


def _refuse_json_too_deep(connector, queryset: QuerySet, entity: Entity) -> None:
    """Before Python reads the rows: a JSON value nested deeper than its parser reads is one line."""
    for model_field in entity.fields:
        if isinstance(model_field, models.JSONField):
            pk = connector.json_too_deep(queryset, model_field.attname)
            if pk is not None:
                raise DataMigrationError(
                    f"{entity.name} id {pk}, field {model_field.name!r}: a JSON value nests deeper than Python "
                    "reads; the jsonl format, without transformations or a k-anonymity check, exports it as it "
                    "is (the server writes it)."
                )


def _copy_json_rows(connector, queryset: QuerySet, entity: Entity, prefix: str):
    """Returns a function that copies the queryset's rows, as `prefix + row JSON + "}"` lines, into a file."""
    try:
        sql, params = queryset.values_list(*[f.attname for f in entity.fields]).query.sql_with_params()
    except EmptyResultSet:  # a filter no row can meet (an id past the column's range): nothing to copy
        return no_rows_copy
    # Keys are field names, not columns (created_by, not created_by_id).
    return connector.copy_json_lines(sql, params, list(entity.field_names), prefix)


def _check_allowed_fields(allowed, selected: list[Entity]) -> None:
    """Each --allow-pii-in names a field the export holds (`entity.field`, or a bare field name): a typo
    would otherwise accept nothing and say nothing."""
    by_name = {entity.name: set(entity.field_names) for entity in selected}
    for name in allowed:
        entity, _, field_name = name.rpartition(".")
        known = (
            field_name in by_name[entity]
            if entity in by_name
            else not entity and any(field_name in fields for fields in by_name.values())
        )
        if not known:
            raise DataMigrationError(
                f"{name} is no field of the exported entities; name it as ENTITY.FIELD "
                f"(e.g. {selected[0].name}.{selected[0].field_names[-1]}).",
                parameter="allow_pii_in",
            )


def _identity_sources(selected: list[Entity]) -> list[Entity]:
    """Every entity whose rules fake person fields (names, usernames, emails), exported or not: their real
    values are searched for in every kept text of the export, so a user's real name in a role's
    description is found although roles come first, and with users left out or filtered."""
    candidates = {entity.name: entity for entity in [*ENTITIES.values(), *selected]}
    for model in apps.get_models(include_auto_created=True):
        if getattr(model, "dbops_anonymize", None):  # a model's own rules may fake person fields too
            try:
                entity = ENTITIES.of_model(model)
            except DataMigrationError:  # a model that may not move (operations state): never exported
                continue
            candidates.setdefault(entity.name, entity)
    return [
        entity for entity in candidates.values()
        if any(rule.kind == "fake" and rule.argument in PERSON_KINDS for rule in entity.anonymize.values())
    ]  # fmt: skip


def _background_scan(
    consistent_read: _ConsistentRead,
    connector,
    scanner: PiiScanner | None,
    querysets: dict[str, QuerySet],
    selected: list[Entity],
    masked_by_entity: dict[str, MaskedColumns | None],
) -> BackgroundScan | None:
    """The scan beside the COPYs, when every entity is rendered by the server (row by row, a record is
    scanned for the identities of the records before it, in order) and the read can be shared: the
    export's own transaction (inside a caller's transaction, another connection would not see its rows)."""
    if scanner is None or not consistent_read.outermost or None in masked_by_entity.values():
        return None
    shared = connector.consistent_read_share()
    if shared is None:
        return None
    return BackgroundScan(
        scanner=scanner, querysets=querysets, entities=selected, using=consistent_read.using, shared=shared
    ).start()


class _ConsistentRead:
    """One read-only consistent-read transaction for the whole export (where the engine has one), so every
    entity is read from the same moment; inside an existing transaction it simply reuses that one."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.atomic = transaction.atomic(using=using)

    def __enter__(self):
        connection = connections[self.using]
        self.outermost = not connection.in_atomic_block
        self.atomic.__enter__()
        if self.outermost:
            get_connector(self.using).consistent_read_begin()
        return self

    def __exit__(self, *exc_info):
        return self.atomic.__exit__(*exc_info)


def _estimate(entity: Entity, queryset: QuerySet, anonymizer: Anonymizer | None) -> EntityExport:
    count = queryset.count()
    names = entity.field_names
    sample = list(queryset.values_list(*[f.attname for f in entity.fields])[:ESTIMATE_SAMPLE])
    if not sample:
        return EntityExport(entity=entity.name, rows=count, estimated_bytes=0)
    sample_bytes = 0
    for row in sample:
        record = dict(zip(names, row, strict=True))
        if anonymizer:
            anonymizer.apply(entity.name, record)
        sample_bytes += len(encode_json(record).encode()) + 1
    return EntityExport(entity=entity.name, rows=count, estimated_bytes=round(sample_bytes / len(sample) * count))
