"""Anonymized jsonl exports rendered by the server: an entity whose every rule the engine can apply in
SQL (Connector.sql_masking: all but generalize:range) is written as the plain export is (COPY of row
JSON), with the rules as expressions; the person fields of a record share one person digest, computed
once per row in an inner query.

The scanner still sees everything kept: each kept text column's distinct values, in the order of the
first record holding them, go through the same checks as row by row (so a hit names the same record
and field); the count of scanned strings is the number of rows' values, as row by row. The real
identity values (names, usernames, emails) of every entity with person fields are read before anything
is exported (exports._identity_sources), as narrow rows, whichever way an entity is written.

When every entity is rendered by the server, that scanner work runs beside the COPYs (BackgroundScan):
on a second connection reading the very snapshot of the export, in the same order, so it finds the
same first hit; the COPYs do not depend on it, and the export is refused as before when it finds one.
"""

from __future__ import annotations

import threading

from django.core.exceptions import EmptyResultSet
from django.db import connections, models, transaction
from django.db.models import Count, Min, QuerySet

from dbops.engines import Connector, get_connector
from dbops.services.datamigration.anonymization import Anonymizer
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.masking_rules import PERSON_KINDS
from dbops.services.datamigration.pii_scan import PiiScanner

CHUNK_VALUES = 10_000
PERSON = "dbops_person"  # the inner query's column holding each record's person digest
# A column whose rule depends on its value alone and that repeats few values (an audit log's IP) is masked
# once per distinct value, and each row looks its value up in a jsonb constant (binary search, row order kept).
LOOKUP_MAX_VALUES = 10_000
LOOKUP_MIN_REPEATS = 10  # rows per distinct value, at least, for the lookup to pay
LOOKUP_SAMPLE = 10_000  # rows read to guess it
_PERSON_RULES = frozenset(f"fake:{kind}" for kind in PERSON_KINDS - {"email"})  # the record's person: not per value
_CHEAP_RULES = frozenset({"keep", "null", "generalize:month", "generalize:year"})


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


class MaskedColumns:
    """The SQL of an entity's masked columns, and of the person digest when it has person fields."""

    def __init__(self, columns: list[str], person: str | None, by_value: list[str | None]) -> None:
        self.columns, self.person = columns, person
        self.by_value = by_value  # per column, its reference where the rule depends on the value alone


def sql_masking_for(connector: Connector, anonymizer: Anonymizer):
    """The engine's masking SQL for this anonymizer's key and vocabulary, the key loaded into the session
    once for the whole export (Connector.sql_masking_end forgets it); None where the engine has none."""
    if not connector.supports_sql_masking:
        return None
    return connector.sql_masking(key=anonymizer.key, vocabulary=anonymizer.vocabulary)


def masked_columns(
    connector: Connector, entity: Entity, masking, anonymizer: Anonymizer, scanner: PiiScanner
) -> MaskedColumns | None:
    """Per exported field, the SQL giving its masked value (`masking`: sql_masking_for); None: the rows go
    through Python."""
    if masking is None:
        return None
    by_name = {f.name: f for f in entity.fields}
    if any(_field_type(by_name[name]) != "text" for name in scanner.scanned_fields.get(entity.name, ())):
        return None  # strings inside kept JSON are scanned row by row
    quote = connector.connection.ops.quote_name
    person = None
    if any(rule.kind == "fake" and rule.argument in PERSON_KINDS for rule in entity.anonymize.values()):
        id_sql = f"src.{quote('id')}::text" if "id" in by_name else "'None'"  # Anonymizer._person's record.get("id")
        person = masking.person_digest(
            [f"src.{quote(name)}" for name in anonymizer.person_key_fields(entity)],
            "'" + f"{entity.name}:".replace("'", "''") + f"' || {id_sql}",
        )
    columns, by_value = [], []
    for model_field in entity.fields:
        rule, ref = str(entity.anonymize.get(model_field.name) or "keep"), f"src.{quote(model_field.name)}"
        masked = masking.column(
            ref, rule=rule, field_type=_field_type(model_field), person=f"src.{PERSON}" if person else None
        )
        if masked is None:
            return None
        columns.append(masked)
        by_value.append(ref if rule not in _CHEAP_RULES | _PERSON_RULES else None)
    return MaskedColumns(columns, person, by_value)


def no_rows_copy(handle) -> int:
    """The copy of a queryset that holds no row whatever the data (it compiles to no SQL at all)."""
    return 0


def masked_copy(connector: Connector, queryset: QuerySet, entity: Entity, masked: MaskedColumns, prefix: str):
    """A function copying the queryset's masked rows, as `prefix + row JSON + "}"` lines, into a file."""
    quote = connector.connection.ops.quote_name
    try:
        inner, params = queryset.values_list(*[f.attname for f in entity.fields]).query.sql_with_params()
    except EmptyResultSet:  # a filter no row can meet (an id past the column's range): nothing to copy
        return no_rows_copy
    names = list(entity.field_names)
    source = f"({inner}) AS src({', '.join(map(quote, names))})"
    columns, column_params = _with_lookups(connector, source, params, masked)
    if masked.person:  # one person digest per record, for all its person fields
        # OFFSET 0: computed once here, not folded into each use of the column
        source = f"(SELECT src.*, {masked.person} AS {PERSON} FROM {source} OFFSET 0) AS src"  # noqa: S608 - generated SQL
    sql = f"SELECT {', '.join(columns)} FROM {source}"  # noqa: S608 - quoted names, generated SQL
    return connector.copy_json_lines(sql, [*column_params, *params], names, prefix)


def _with_lookups(connector: Connector, source: str, params, masked: MaskedColumns) -> tuple[list[str], list]:
    """The columns, those that repeat few values as lookups into their masked distinct values, and the
    parameters the columns take (before the source's own). A lookup is an uncorrelated subquery (run once
    per statement) whose jsonb maps each real value to its masked one, built by the server: as a literal
    the real values would stand in the statement, in pg_stat_activity and in the server's log of a failing
    statement. Not a temporary table: the export's consistent read is a read-only transaction."""
    columns, column_params = list(masked.columns), []
    with connector.connection.cursor() as cursor:
        for index, ref in enumerate(masked.by_value):
            if ref is None:
                continue
            # Whether the first rows repeat their values enough: a cheap guess (a wrong one only costs time).
            cursor.execute(
                f"SELECT count(v), count(DISTINCT v) FROM (SELECT {ref} AS v FROM {source} LIMIT {LOOKUP_SAMPLE}) AS s",  # noqa: S608, E501
                params,
            )
            rows, distinct = cursor.fetchone()
            if distinct * LOOKUP_MIN_REPEATS > rows:
                continue
            distinct_values = (
                f"SELECT DISTINCT {ref} FROM {source} WHERE {ref} IS NOT NULL LIMIT {LOOKUP_MAX_VALUES + 1}"  # noqa: S608
            )
            cursor.execute(f"SELECT count(*) FROM ({distinct_values}) AS src", params)  # noqa: S608
            if cursor.fetchone()[0] > LOOKUP_MAX_VALUES:
                continue
            lookup = f"(SELECT jsonb_object_agg({ref}::text, {columns[index]}) FROM ({distinct_values}) AS src)"  # noqa: S608
            columns[index] = f"CASE WHEN {ref} IS NULL THEN {columns[index]} ELSE {lookup} ->> ({ref}::text) END"
            column_params += params  # the lookup holds the source (and its filter values) once
    return columns, column_params


def remember_identities(scanner: PiiScanner, queryset: QuerySet, entity: Entity) -> None:
    """The real identity values of the entity's records, for the scans of every exported entity."""
    fields = [name for name, _kind in scanner.identity_fields.get(entity.name, ())]
    if not fields:
        return
    by_name = {f.name: f for f in entity.fields}
    rows = queryset.values_list(*[by_name[name].attname for name in fields]).iterator(chunk_size=CHUNK_VALUES)
    for row in rows:
        scanner.remember(entity.name, dict(zip(fields, row, strict=True)))


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


class BackgroundScan:
    """scan_kept_values for each entity in export order, in a thread with its own connection that reads the
    consistent read `shared` (Connector.consistent_read_share), while the export's connection copies."""

    def __init__(
        self, *, scanner: PiiScanner, querysets: dict[str, QuerySet], entities: list[Entity], using: str, shared: str
    ) -> None:
        self.scanner, self.querysets, self.entities = scanner, querysets, entities
        self.using, self.shared = using, shared
        self.error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbops-pii-scan", daemon=True)

    def start(self) -> BackgroundScan:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with transaction.atomic(using=self.using):  # this thread's own connection
                get_connector(self.using).consistent_read_join(self.shared)
                for entity in self.entities:
                    if self._cancelled.is_set():
                        return
                    scan_kept_values(self.scanner, self.querysets[entity.name], entity)
        except BaseException as exc:  # handed to the export's thread by check()/finish()
            self.error = exc
        finally:
            connections[self.using].close()

    def check(self) -> None:
        """Raises what the scan raised so far (PersonalDataFound: the export stops before copying more)."""
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Waits for the scan to end; raises what it raised."""
        self._thread.join()
        self.check()

    def cancel(self) -> None:
        """Stops the scan after its current entity and waits for it (before the shared read ends)."""
        self._cancelled.set()
        self._thread.join()
