"""The entities that export_data / import_data move, in dependency order, and how their fields
are named and typed in a portable file.

A record is a dict keyed by field name (a foreign key by its field name, holding the related id),
values in JSON-friendly types: int, bool, str, None, ISO 8601 strings for datetimes, any JSON value
for JSON fields. Passwords are never part of a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models

from dbops.exceptions import UnknownEntityError
from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User

UserRole = User.roles.through

# Never exported, never read from a file (imports give users an unusable password).
NEVER_EXPORTED: dict[type[models.Model], frozenset[str]] = {User: frozenset({"password"})}


@dataclass(frozen=True)
class Entity:
    name: str
    model: type[models.Model]
    since_field: str | None = None  # what --since filters on
    # Exported along with this one in json/jsonl, so the file can be imported again on its own.
    companions: tuple[str, ...] = ()
    # (foreign key field, parent entity): rows are limited to the exported parents when both are selected.
    parent: tuple[str, str] | None = None
    fields: tuple[models.Field, ...] = field(default=(), compare=False)

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def field_names(self) -> list[str]:
        return [model_field.name for model_field in self.fields]


def _fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    hidden = NEVER_EXPORTED.get(model, frozenset())
    return tuple(f for f in model._meta.concrete_fields if f.name not in hidden)


def _entity(name: str, model: type[models.Model], **kwargs) -> Entity:
    return Entity(name=name, model=model, fields=_fields(model), **kwargs)


# Dependency order: every entity comes after the entities its foreign keys point at.
ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in (
        _entity("roles", Role, since_field="created_at"),
        _entity("users", User, since_field="date_joined", companions=("roles", "user_roles")),
        _entity("user_roles", UserRole, parent=("user", "users")),
        _entity("concepts", Concept, since_field="updated_at"),
        _entity("dictionaries", Dictionary, since_field="created_at", companions=("dictionary_entries",)),
        _entity("dictionary_entries", DictionaryEntry, parent=("dictionary", "dictionaries")),
        _entity("stored_files", StoredFile, since_field="created_at"),
        _entity("audit_logs", AuditLog, since_field="timestamp"),
    )
}
ENTITY_BY_TABLE: dict[str, Entity] = {entity.table: entity for entity in ENTITIES.values()}


def entity_names_help() -> str:
    return ", ".join(ENTITIES)


def resolve_entities(names: list[str] | str | None, *, with_companions: bool = False) -> list[Entity]:
    """The named entities (all when none are named) in dependency order; unknown names are rejected."""
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    if not names:
        return list(ENTITIES.values())
    unknown = [name for name in names if name not in ENTITIES]
    if unknown:
        raise UnknownEntityError(
            f"Unknown entit{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}. "
            f"Valid entities: {entity_names_help()}."
        )
    wanted = set(names)
    if with_companions:
        for name in names:
            wanted.update(ENTITIES[name].companions)
    return [entity for entity in ENTITIES.values() if entity.name in wanted]


def entity_for_model(model: type[models.Model]) -> Entity | None:
    for entity in ENTITIES.values():
        if entity.model is model:
            return entity
    return None
