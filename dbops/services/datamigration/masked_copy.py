"""Anonymized jsonl exports rendered by the server: an entity whose every rule the engine can apply in
SQL (keep, null, hash, fake:ip, generalize:month|year; Connector.masked_column) and that holds no
identity column is written as the plain export is (COPY of row JSON), with the rules as expressions.

The scanner still sees everything kept: each kept text column's distinct values, in the order of the
first record holding them, go through the same checks as row by row (so a hit names the same record
and field); the count of scanned strings is the number of rows' values, as row by row.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Count, Min, QuerySet

from dbops.engines import Connector
from dbops.services.datamigration.anonymization import Anonymizer
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.pii_scan import PiiScanner

CHUNK_VALUES = 10_000


def _field_type(model_field: models.Field) -> str:
    if isinstance(model_field, models.GenericIPAddressField):
        return "inet"
    if isinstance(model_field, models.CharField | models.TextField):
        return "text"
    if isinstance(model_field, models.JSONField):
        return "json"
    if isinstance(model_field, models.DateTimeField):
        return "datetime"
    if isinstance(model_field, models.DateField):
        return "date"
    return "other"


def masked_columns(
    connector: Connector, entity: Entity, anonymizer: Anonymizer, scanner: PiiScanner
) -> list[tuple[str, list]] | None:
    """Per exported field, the (SQL, parameters) giving its masked value; None: the rows go through Python."""
    if not connector.supports_sql_masking or scanner.identity_fields.get(entity.name):
        return None
    by_name = {f.name: f for f in entity.fields}
    if any(_field_type(by_name[name]) != "text" for name in scanner.scanned_fields.get(entity.name, ())):
        return None  # strings inside kept JSON are scanned row by row
    quote = connector.connection.ops.quote_name
    columns = []
    for model_field in entity.fields:
        rule = entity.anonymize.get(model_field.name)
        masked = connector.masked_column(
            f"src.{quote(model_field.name)}",
            rule=str(rule) if rule else "keep",
            field_type=_field_type(model_field),
            key=anonymizer.key,
        )
        if masked is None:
            return None
        columns.append(masked)
    return columns


def masked_copy(connector: Connector, queryset: QuerySet, entity: Entity, columns: list[tuple[str, list]], prefix: str):
    """A function copying the queryset's masked rows, as `prefix + row JSON + "}"` lines, into a file."""
    quote = connector.connection.ops.quote_name
    inner, inner_params = queryset.values_list(*[f.attname for f in entity.fields]).query.sql_with_params()
    names = list(entity.field_names)
    expressions = ", ".join(sql for sql, _ in columns)
    params = [param for _, column_params in columns for param in column_params]
    sql = f"SELECT {expressions} FROM ({inner}) AS src({', '.join(map(quote, names))})"  # noqa: S608 - quoted names
    return connector.copy_json_lines(sql, [*params, *inner_params], names, prefix)


def scan_kept_values(scanner: PiiScanner, queryset: QuerySet, entity: Entity) -> None:
    """Scans each kept text column's distinct values; raises PersonalDataFound naming the first record."""
    by_name = {f.name: f for f in entity.fields}
    first_hit: tuple[int, int, str, str] | None = None  # (pk, field order, field, what)
    for order, name in enumerate(scanner.scanned_fields.get(entity.name, ())):
        attname = by_name[name].attname
        values = (
            queryset.order_by()
            .values_list(attname)
            .annotate(rows=Count("pk"), first=Min("pk"))
            .order_by("first")
            .values_list(attname, "rows", "first")
        )
        for value, rows, first in values.iterator(chunk_size=CHUNK_VALUES):
            if first_hit is not None and first > first_hit[0]:
                break  # a later record: the hit already found comes first
            if not isinstance(value, str):
                continue
            scanner.strings += rows
            found = scanner.text_holds(value)
            if found:
                if first_hit is None or (first, order) < first_hit[:2]:
                    first_hit = (first, order, name, found)
                break
    if first_hit is not None:
        pk, _order, name, found = first_hit
        raise scanner.refusal(entity.name, queryset.filter(pk__lte=pk).count(), name, found)
