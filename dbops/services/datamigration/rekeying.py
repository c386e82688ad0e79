"""`import_data --mode upsert --match natural|field:NAME`: a file from another environment matches
existing rows by what they are, not by their ids (as `loaddata` does with natural keys).

On the staged rows, in dependency order and in SQL, each entity with a key:
1. foreign keys towards entities re-keyed before it take the new ids of the rows they point at;
2. a record whose key matches two or more existing rows is refused (it cannot say which to update);
3. a record whose key matches one existing row takes that row's id (the upsert updates that row);
   one that matches none takes a fresh id past the table's largest (the upsert creates it), so a
   file id that happens to be another row's id here never overwrites that row;
4. foreign keys of the entity towards itself (a tree) follow.
An entity without a key is matched by id, its foreign keys still re-pointed.

The key of an entity: its declared `natural_key`, else its first unique field or unique set of fields
(a membership's (user, role) pair, for instance); `field:NAME` uses NAME where the entity has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections, models

from dbops.exceptions import DataMigrationError, ImportValidationError
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


class Rekeying:
    """The id maps (old id in the file -> id here) of one import, as temporary tables."""

    def __init__(self, stages: dict[str, Stage], *, match: Match, using: str) -> None:
        self.stages, self.match = stages, match
        self.connection = connections[using]
        self.quote = self.connection.ops.quote_name
        self.maps: dict[type[models.Model], str] = {}
        if match.kind == "field" and not any(
            match.field in {f.name for f in stage.entity.fields} for stage in stages.values()
        ):
            names = ", ".join(stages)
            raise DataMigrationError(f"No entity of the file has a field {match.field!r} ({names}).", parameter="match")

    def run(self) -> None:
        problems: list[Problem] = []
        with self.connection.cursor() as cursor:
            for stage in self.stages.values():
                self._repoint(cursor, stage, same_model=False)
                key = entity_key(stage, self.match)
                if key and not self._has_duplicate_ids(cursor, stage):
                    problems += self._ambiguous(cursor, stage, key)
                    if not problems:
                        self._map(cursor, stage, key)
                        self._repoint(cursor, stage, same_model=True)
        if problems:
            raise ImportValidationError(sorted(problems)[:MAX_PROBLEMS], total=len(problems))

    def drop(self) -> None:
        with self.connection.cursor() as cursor:
            for table in self.maps.values():
                cursor.execute(f"DROP TABLE IF EXISTS {table}")

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

    def _map(self, cursor, stage: Stage, key: list[models.Field]) -> None:
        model = stage.entity.model
        pk, recno = self.quote(model._meta.pk.column), self.quote(RECNO)
        table = self.maps[model] = self.quote(f"_dbops_rekey_{model._meta.db_table}")
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {table} AS SELECT s.{pk} AS old_id, t.{pk} AS new_id "  # noqa: S608
            f"FROM {stage.name} s JOIN {stage.target} t ON {self._same(key)}"
        )
        if model._meta.pk.get_internal_type() in AUTO_KEYS:
            cursor.execute(
                f"INSERT INTO {table} (old_id, new_id) SELECT s.{pk}, "  # noqa: S608
                f"(SELECT COALESCE(MAX(t.{pk}), 0) FROM {stage.target} t) + ROW_NUMBER() OVER (ORDER BY s.{recno}) "
                f"FROM {stage.name} s WHERE NOT EXISTS (SELECT 1 FROM {table} m WHERE m.old_id = s.{pk})"
            )
        self._apply(cursor, stage, pk, table)

    def _repoint(self, cursor, stage: Stage, *, same_model: bool) -> None:
        """Foreign keys of the staged rows towards re-keyed entities take the new ids."""
        model = stage.entity.model
        for model_field in stage.entity.fields:
            if not (model_field.many_to_one or model_field.one_to_one) or not model_field.target_field.primary_key:
                continue
            related = model_field.related_model
            if (related is model) == same_model and related in self.maps:
                self._apply(cursor, stage, self.quote(model_field.column), self.maps[related])

    def _apply(self, cursor, stage: Stage, column: str, table: str) -> None:
        cursor.execute(
            f"UPDATE {stage.name} SET {column} = (SELECT m.new_id FROM {table} m "  # noqa: S608
            f"WHERE m.old_id = {stage.name}.{column}) WHERE {column} IN (SELECT old_id FROM {table})"
        )
