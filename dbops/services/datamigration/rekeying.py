"""`import_data --mode upsert --match natural|field:NAME`: a file from another environment matches
existing rows by what they are, not by their ids (as `loaddata` does with natural keys).

First, its foreign keys must point at rows of the file: an id of the other environment means another
row here (or none), so a foreign key to an entity the file does not carry, or to a row it does not
carry, is refused (null ones pass). Then, on the staged rows, in dependency order and in SQL:
1. foreign keys towards entities re-keyed before it take the new ids of the rows they point at;
2. a record whose key matches two or more existing rows is refused (it cannot say which to update),
   and so are records that all match the same existing row (they cannot all update it);
3. a record whose key matches one existing row takes that row's id (the upsert updates that row);
   one that matches none takes a fresh id past the table's largest (the upsert creates it), so a
   file id that happens to be another row's id here never overwrites that row;
4. foreign keys towards the entity itself (a tree) or entities re-keyed after it follow.
An entity without a key matches nothing: its records are created with fresh ids (a warning says so),
their foreign keys re-pointed; only one whose ids are not numbered here (a uuid) keeps them.

The key of an entity: its declared `natural_key`, else its first unique field or unique set of fields
(a membership's (user, role) pair, for instance); `field:NAME` uses NAME where the entity has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections, models

from dbops.exceptions import DataMigrationError, ImportValidationError
from dbops.services.datamigration.entities import entity_for_model
from dbops.services.datamigration.staging import AUTO_KEYS, RECNO, Problem, Stage

MAX_PROBLEMS = 1_000


@dataclass(frozen=True)
class Match:
    kind: str  # id, natural, field
    field: str = ""

    def __str__(self) -> str:
        return f"field:{self.field}" if self.kind == "field" else self.kind


def match_parse(text: str) -> Match:
    kind, _, name = (text or "id").partition(":")
    if kind in ("id", "natural") and not name:
        return Match(kind)
    if kind == "field" and name.isidentifier():
        return Match(kind, name)
    raise DataMigrationError(f"Unknown match {text!r}; use id, natural or field:NAME.", parameter="match")


def entity_key(stage: Stage, match: Match) -> list[models.Field]:
    """The fields the entity's rows are matched on ([]: by id)."""
    model = stage.entity.model
    concrete = {f.name: f for f in model._meta.concrete_fields}
    if match.kind == "field" and match.field in concrete and not concrete[match.field].primary_key:
        return [concrete[match.field]]
    if stage.entity.natural_key:
        return [concrete[name] for name in stage.entity.natural_key]
    opts = model._meta
    unique_sets = [[f.name] for f in opts.concrete_fields if f.unique and not f.primary_key]
    unique_sets += [list(together) for together in opts.unique_together]
    unique_sets += [list(constraint.fields) for constraint in opts.total_unique_constraints]
    return [concrete[name] for name in unique_sets[0]] if unique_sets else []


class SharedMatch(Problem):
    """Records that all match the same existing row; `record` is the first, the message names them all."""

    def __str__(self) -> str:
        return f"{self.entity} {self.message}"


def _problem_order(problem: Problem) -> tuple:
    return (problem.entity_order, problem.record, problem.field, problem.message)  # Problem and SharedMatch


def _records(numbers: list[int]) -> str:
    shown = [str(number) for number in numbers[:5]]
    if len(numbers) > 5:
        shown[-1] = f"{len(numbers) - 4:,} more"
    return f"records {', '.join(shown[:-1])} and {shown[-1]} {'both' if len(numbers) == 2 else 'all'}"


class Rekeying:
    """The id maps (old id in the file -> id here) of one import, as temporary tables."""

    def __init__(self, stages: dict[str, Stage], *, match: Match, using: str) -> None:
        self.stages, self.match = stages, match
        self.connection = connections[using]
        self.quote = self.connection.ops.quote_name
        self.maps: dict[type[models.Model], str] = {}
        self.repointed: set[tuple[str, str]] = set()  # (staging table, column) already given the new ids
        self.warnings: list[str] = []
        if match.kind == "field" and not any(
            match.field in {f.name for f in stage.entity.fields} for stage in stages.values()
        ):
            names = ", ".join(stages)
            raise DataMigrationError(f"No entity of the file has a field {match.field!r} ({names}).", parameter="match")

    def run(self) -> None:
        problems: list[Problem] = []
        with self.connection.cursor() as cursor:
            self._refuse_foreign_ids(cursor)
            for stage in self.stages.values():
                self._repoint(cursor, stage)
                if self._has_duplicate_ids(cursor, stage):
                    continue
                key = entity_key(stage, self.match)
                if key:
                    problems += self._ambiguous(cursor, stage, key) + self._shared(cursor, stage, key)
                elif stage.entity.model._meta.pk.get_internal_type() in AUTO_KEYS:
                    self.warnings.append(self._keyless_warning(stage))
                else:
                    continue  # ids chosen, not numbered (a uuid): the same row has the same id everywhere
                if not problems:
                    self._map(cursor, stage, key)
            for stage in self.stages.values():  # towards itself (a tree), or an entity mapped after it
                self._repoint(cursor, stage)
        if problems:
            raise ImportValidationError(sorted(problems, key=_problem_order)[:MAX_PROBLEMS], total=len(problems))

    def drop(self) -> None:
        with self.connection.cursor() as cursor:
            for table in self.maps.values():
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

    def _foreign_keys(self, stage: Stage) -> list[models.Field]:
        """The entity's foreign keys that hold ids (not another unique field's values)."""
        return [
            model_field
            for model_field in stage.entity.fields
            if (model_field.many_to_one or model_field.one_to_one) and model_field.target_field.primary_key
        ]

    def _refuse_foreign_ids(self, cursor) -> None:
        """Before any id changes: every foreign key points at a row of the file (or nothing), else refused."""
        in_file = {stage.entity.model: stage for stage in self.stages.values()}
        pointers, problems = [], []
        for stage in self.stages.values():
            for model_field in self._foreign_keys(stage):
                column, related = self.quote(model_field.column), model_field.related_model
                target = in_file.get(related)
                if target is None:
                    cursor.execute(f"SELECT 1 FROM {stage.name} WHERE {column} IS NOT NULL LIMIT 1")  # noqa: S608
                    if cursor.fetchone():
                        pointers.append((f"{stage.entity.name}.{model_field.name}", _entity_name(related)))
                    continue
                related_pk, recno = self.quote(related._meta.pk.column), self.quote(RECNO)
                cursor.execute(
                    f"SELECT s.{recno}, s.{column} FROM {stage.name} s WHERE s.{column} IS NOT NULL "  # noqa: S608
                    f"AND NOT EXISTS (SELECT 1 FROM {target.name} r WHERE r.{related_pk} = s.{column}) "
                    f"ORDER BY 1 LIMIT {MAX_PROBLEMS}"
                )
                message = (
                    f"points at {target.entity.name} id {{}} of the other database, which this file does not carry"
                )
                problems += [
                    Problem(stage.order, number, stage.entity.name, model_field.name, message.format(value))
                    for number, value in cursor.fetchall()
                ]
        if pointers:
            raise DataMigrationError(_foreign_message(pointers), parameter="match")
        if problems:
            raise ImportValidationError(sorted(problems)[:MAX_PROBLEMS], total=len(problems))

    def _same(self, key: list[models.Field]) -> str:
        return " AND ".join(f"t.{self.quote(f.column)} = s.{self.quote(f.column)}" for f in key)

    def _has_duplicate_ids(self, cursor, stage: Stage) -> bool:
        pk = self.quote(stage.entity.model._meta.pk.column)
        cursor.execute(f"SELECT COUNT(*) - COUNT(DISTINCT {pk}) FROM {stage.name}")  # noqa: S608
        return cursor.fetchone()[0] > 0  # validation reports them; a map would hide them

    def _ambiguous(self, cursor, stage: Stage, key: list[models.Field]) -> list[Problem]:
        recno, label = self.quote(RECNO), ", ".join(f.name for f in key)
        cursor.execute(
            f"SELECT s.{recno}, COUNT(*) FROM {stage.name} s JOIN {stage.target} t ON {self._same(key)} "  # noqa: S608
            f"GROUP BY s.{recno} HAVING COUNT(*) > 1 ORDER BY 1 LIMIT {MAX_PROBLEMS}"
        )
        return [
            Problem(stage.order, number, stage.entity.name, label, f"matches {count} existing rows by {label}")
            for number, count in cursor.fetchall()
        ]

    def _shared(self, cursor, stage: Stage, key: list[models.Field]) -> list[Problem]:
        """Records that match the same existing row (the map would give them all its id)."""
        pk, recno, label = (
            self.quote(stage.entity.model._meta.pk.column),
            self.quote(RECNO),
            ", ".join(f.name for f in key),
        )
        cursor.execute(
            f"SELECT id, number FROM (SELECT t.{pk} AS id, s.{recno} AS number, "  # noqa: S608
            f"COUNT(*) OVER (PARTITION BY t.{pk}) AS matches FROM {stage.name} s JOIN {stage.target} t "
            f"ON {self._same(key)}) m WHERE matches > 1 ORDER BY id, number LIMIT {10 * MAX_PROBLEMS}"
        )
        by_row: dict[object, list[int]] = {}
        for row_id, number in cursor.fetchall():
            by_row.setdefault(row_id, []).append(number)
        return [
            SharedMatch(
                stage.order,
                numbers[0],
                stage.entity.name,
                label,
                f"{_records(numbers)} match existing row id {row_id} by {label}",
            )  # fmt: skip
            for row_id, numbers in by_row.items()
        ]

    def _keyless_warning(self, stage: Stage) -> str:
        missing = f"no field {self.match.field!r} and " if self.match.kind == "field" else ""
        return (
            f"{stage.entity.name}: {missing}no natural key to match existing rows by; its {stage.rows:,} record(s) "
            "are added as new rows with fresh ids."
        )

    def _map(self, cursor, stage: Stage, key: list[models.Field]) -> None:
        """Records that match a row take its id; the others (all of them without a key) fresh ones."""
        model = stage.entity.model
        pk, recno = self.quote(model._meta.pk.column), self.quote(RECNO)
        table = self.maps[model] = self.quote(f"_dbops_rekey_{model._meta.db_table}")
        matched = f"JOIN {stage.target} t ON {self._same(key)}" if key else "WHERE false"
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {table} AS SELECT s.{pk} AS old_id, {'t' if key else 's'}.{pk} AS new_id "  # noqa: S608
            f"FROM {stage.name} s {matched}"
        )
        if model._meta.pk.get_internal_type() in AUTO_KEYS:
            cursor.execute(
                f"INSERT INTO {table} (old_id, new_id) SELECT s.{pk}, "  # noqa: S608
                f"(SELECT COALESCE(MAX(t.{pk}), 0) FROM {stage.target} t) + ROW_NUMBER() OVER (ORDER BY s.{recno}) "
                f"FROM {stage.name} s WHERE NOT EXISTS (SELECT 1 FROM {table} m WHERE m.old_id = s.{pk})"
            )
        self._apply(cursor, stage, pk, table)

    def _repoint(self, cursor, stage: Stage) -> None:
        """Foreign keys of the staged rows towards re-keyed entities take the new ids, each once."""
        for model_field in self._foreign_keys(stage):
            column = self.quote(model_field.column)
            table = self.maps.get(model_field.related_model)
            if table and (stage.name, column) not in self.repointed:
                self.repointed.add((stage.name, column))
                self._apply(cursor, stage, column, table)

    def _apply(self, cursor, stage: Stage, column: str, table: str) -> None:
        cursor.execute(
            f"UPDATE {stage.name} SET {column} = (SELECT m.new_id FROM {table} m "  # noqa: S608
            f"WHERE m.old_id = {stage.name}.{column}) WHERE {column} IN (SELECT old_id FROM {table})"
        )


def _entity_name(model: type[models.Model]) -> str:
    entity = entity_for_model(model)
    return entity.name if entity else model._meta.label


def _foreign_message(pointers: list[tuple[str, str]]) -> str:
    """One refusal for the foreign keys (ENTITY.FIELD, entity it points at) to entities the file does not carry."""
    targets = ", ".join(dict.fromkeys(target for _, target in pointers))
    if len(pointers) == 1:
        ((field_name, target),) = pointers
        return (
            f"{field_name} points at {target} ids of the other database, which this file does not carry: "
            f"export {targets} with it, or match by id."
        )
    listed = ", ".join(f"{field_name} ({target})" for field_name, target in pointers)
    return (
        f"Foreign keys point at ids of the other database, which this file does not carry: {listed}: "
        f"export {targets} with it, or match by id."
    )
