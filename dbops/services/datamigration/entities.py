"""The entities that export_data / import_data / snapshots move, in dependency order, and how their
fields are named and typed in a portable file.

The project declares them: `DBOPS["ENTITIES"]` in its settings (see dbops.conf), or `entity_register(...)`
from an app's AppConfig.ready(). `ENTITIES` is the registry, read like a dict {name: Entity}; it is built
on first use, after the app registry is ready, and again when DBOPS changes (override_settings).

A record is a dict keyed by field name (a foreign key by its field name, holding the related id),
values in JSON-friendly types: int, bool, str, None, ISO 8601 strings for datetimes, any JSON value
for JSON fields. Excluded fields (a password) are never part of a record.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.signals import setting_changed
from django.db import models

from dbops.conf import dbops_setting
from dbops.exceptions import ConfigurationError, UnknownEntityError
from dbops.services.datamigration.masking_rules import Rule, RuleError, rule_misfit, rule_parse
from dbops.services.datamigration.model_entities import entity_position, model_entity_build, model_for_label
from dbops.services.datamigration.privileges import privilege_flags, rows_grant_privileges

DECLARATION_OPTIONS = frozenset(
    {
        "name",
        "model",
        "since_field",
        "companions",
        "parent",
        "exclude",
        "anonymize",
        "privileged",
        "quasi_identifiers",
        "natural_key",
    }
)


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
    never_exported: frozenset[str] = frozenset()  # not in files; imports fill them (import_defaults)
    # field -> masking rule (masking_rules.Rule): the model's `dbops_anonymize`, then the declaration's
    anonymize: Mapping[str, Rule] = field(default_factory=dict, compare=False)
    quasi_identifiers: tuple[str, ...] = ()  # fields whose combination could single someone out (k-anonymity)
    natural_key: tuple[str, ...] = ()  # fields that say which row a record is across environments (--match natural)
    import_defaults: Mapping[str, Callable[[], object]] = field(default_factory=dict, compare=False)
    # Fields whose true value grants a privilege, and whether every row grants one (a membership table):
    # import_data refuses both unless it is allowed to import privileges.
    privileged_fields: frozenset[str] = frozenset()
    privileged: bool = False

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def field_names(self) -> list[str]:
        return [model_field.name for model_field in self.fields]


@dataclass(frozen=True)
class EntityProblem:
    check_id: str  # the dbops.E1xx system check id
    message: str


def _unusable_password() -> str:
    # Like make_password(None), without its 40 secrets.choice calls per imported user.
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)


def _import_default(model: type[models.Model], model_field: models.Field) -> Callable[[], object] | None:
    """What an import puts in a field that files never carry, or None when nothing fits."""
    if model_field.name == "password" and hasattr(model, "set_unusable_password"):
        return _unusable_password  # an auth user: imported users must set a password before logging in
    if model_field.has_default():
        return model_field.get_default
    if model_field.null:
        return lambda: None
    if model_field.blank and model_field.empty_strings_allowed:
        return lambda: ""
    return None


class EntityRegistry(Mapping[str, Entity]):
    """The declared entities by name, in dependency order. Raises ConfigurationError on first use when a
    declaration is wrong (the dbops.E1xx system checks report every problem at start-up)."""

    def __init__(self) -> None:
        self._registered: list[dict[str, Any]] = []
        self._built: tuple[dict[str, Entity], dict[str, Entity]] | None = None
        self._of_models: dict[type[models.Model], Entity] = {}  # entities of models nobody declared
        self._lock = threading.Lock()

    # --- declaring ------------------------------------------------------------------------------

    def register(self, declaration: dict[str, Any]) -> None:
        self._registered.append(dict(declaration))
        self.reset()

    def reset(self) -> None:
        self._built = None
        self._of_models = {}

    def declarations(self) -> list[Any]:
        declared = dbops_setting("ENTITIES")
        return [*(declared if isinstance(declared, list | tuple) else [declared]), *self._registered]

    def problems(self) -> list[EntityProblem]:
        return _build(self.declarations())[1]

    # --- reading --------------------------------------------------------------------------------

    def _entities(self) -> tuple[dict[str, Entity], dict[str, Entity]]:
        built = self._built
        if built is None:
            with self._lock:
                entities, problems = _build(self.declarations())
                if problems:
                    raise ConfigurationError(f"DBOPS['ENTITIES']: {problems[0].message}")
                built = self._built = (entities, {entity.table: entity for entity in entities.values()})
        return built

    def __getitem__(self, name: str) -> Entity:
        declared = self._entities()[0]
        if name in declared:
            return declared[name]
        model = model_for_label(name)
        if model is None:
            raise KeyError(name)
        return self.of_model(model)

    def __contains__(self, name: object) -> bool:
        return name in self._entities()[0] or model_for_label(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entities()[0])

    def __len__(self) -> int:
        return len(self._entities()[0])

    def by_table(self, table: str) -> Entity | None:
        entity = self._entities()[1].get(table)
        if entity is None:
            model = next((m for m in apps.get_models(include_auto_created=True) if m._meta.db_table == table), None)
            entity = self.of_model(model) if model is not None else None
        return entity

    def for_model(self, model: type[models.Model]) -> Entity | None:
        """The declared entity of the model, or the one built for it when it was named already."""
        for entity in self._entities()[0].values():
            if entity.model is model:
                return entity
        return self._of_models.get(model)

    def of_model(self, model: type[models.Model]) -> Entity:
        """The declared entity of the model (its short name), else one built from the model alone."""
        entity = self.for_model(model)
        if entity is None:
            entity = self._of_models[model] = model_entity_build(model)
        return entity

    def position(self, entity: Entity) -> float:
        """The entity's place in dependency order (declared ones at their index)."""
        declared = {name: index for index, name in enumerate(self._entities()[0])}
        return entity_position(entity, declared, self.for_model)


ENTITIES = EntityRegistry()


def entity_register(
    *,
    name: str,
    model: str,
    since_field: str | None = None,
    companions: tuple[str, ...] | list[str] = (),
    parent: tuple[str, str] | list[str] | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    anonymize: dict[str, str] | None = None,
    privileged: bool | tuple[str, ...] | list[str] = (),
    quasi_identifiers: tuple[str, ...] | list[str] = (),
) -> None:
    """Declares an entity from code (an app's AppConfig.ready()), after those in DBOPS["ENTITIES"]."""
    ENTITIES.register(
        {
            "name": name,
            "model": model,
            "since_field": since_field,
            "companions": list(companions),
            "parent": list(parent) if parent else None,
            "exclude": list(exclude),
            "anonymize": dict(anonymize or {}),
            "privileged": privileged if isinstance(privileged, bool) else list(privileged),
            "quasi_identifiers": list(quasi_identifiers),
        }
    )


def _reset_on_settings_change(*, setting: str, **kwargs) -> None:
    if setting == "DBOPS":
        ENTITIES.reset()


setting_changed.connect(_reset_on_settings_change, dispatch_uid="dbops.entities.reset")


# --- building and checking the declarations --------------------------------------------------------


def _string_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)


def _shape_problem(position: int, declaration: Any) -> str | None:
    where = f"entity #{position + 1}"
    if not isinstance(declaration, dict):
        return f"{where} is {type(declaration).__name__}, not a dict with 'name' and 'model'."
    unknown = sorted(set(declaration) - DECLARATION_OPTIONS)
    if unknown:
        return f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(DECLARATION_OPTIONS))}."
    name, model = declaration.get("name"), declaration.get("model")
    if not isinstance(name, str) or not name:
        return f"{where} has no 'name'."
    if not isinstance(model, str) or model.count(".") != 1:
        return f"entity {name!r}: 'model' must be an 'app_label.ModelName' string, not {model!r}."
    for option in ("companions", "exclude", "quasi_identifiers", "natural_key"):
        if not _string_list(declaration.get(option) or []):
            return f"entity {name!r}: {option!r} must be a list of names."
    parent = declaration.get("parent")
    if parent is not None and not (_string_list(parent) and len(parent) == 2):
        return f"entity {name!r}: 'parent' must be [foreign key field, parent entity], not {parent!r}."
    anonymize = declaration.get("anonymize") or {}
    if not (isinstance(anonymize, dict) and all(isinstance(v, str) for v in anonymize.values())):
        return f"entity {name!r}: 'anonymize' must map field names to masking rules."
    since_field = declaration.get("since_field")
    if since_field is not None and not isinstance(since_field, str):
        return f"entity {name!r}: 'since_field' must be a field name."
    privileged = declaration.get("privileged", ())
    if not (isinstance(privileged, bool) or _string_list(privileged)):
        return f"entity {name!r}: 'privileged' must be true (every row grants a privilege) or a list of fields."
    return None


def _entity_from(declaration: dict[str, Any], model: type[models.Model], problems: list[EntityProblem]) -> Entity:
    name = declaration["name"]
    concrete = {model_field.name: model_field for model_field in model._meta.concrete_fields}

    def check_fields(option: str, names) -> None:
        missing = [field_name for field_name in names if field_name not in concrete]
        if missing:
            problems.append(
                EntityProblem(
                    "dbops.E104",
                    f"entity {name!r}: {option} names no field of {model._meta.label}: {', '.join(missing)} "
                    f"(fields: {', '.join(concrete)}).",
                )
            )

    since_field = declaration.get("since_field")
    excluded = frozenset(declaration.get("exclude") or ())
    anonymize = {**getattr(model, "dbops_anonymize", {}), **(declaration.get("anonymize") or {})}
    quasi_identifiers = tuple(declaration.get("quasi_identifiers") or ())
    parent = tuple(declaration["parent"]) if declaration.get("parent") else None
    privileged = declaration.get("privileged") or ()
    declared_privileged = () if isinstance(privileged, bool) else tuple(privileged)
    check_fields("'since_field'", [since_field] if since_field else [])
    check_fields("'privileged'", list(declared_privileged))
    check_fields("'exclude'", sorted(excluded))
    check_fields("'anonymize'", list(anonymize))
    check_fields("'quasi_identifiers'", list(quasi_identifiers))
    natural_key = tuple(declaration.get("natural_key") or ())
    check_fields("'natural_key'", list(natural_key))
    rules = _rules(name, anonymize, concrete, problems)
    if parent:
        check_fields("'parent'", [parent[0]])
    defaults = {}
    for field_name in sorted(excluded & set(concrete)):
        default = _import_default(model, concrete[field_name])
        if default is None:
            problems.append(
                EntityProblem(
                    "dbops.E108",
                    f"entity {name!r}: excluded field {field_name!r} is required and has no default, so an "
                    "import could not fill it; give it a default or stop excluding it.",
                )
            )
        defaults[field_name] = default
    return Entity(
        name=name,
        model=model,
        since_field=since_field,
        companions=tuple(declaration.get("companions") or ()),
        parent=parent,
        fields=tuple(f for f in model._meta.concrete_fields if f.name not in excluded),
        never_exported=excluded,
        anonymize=rules,
        quasi_identifiers=quasi_identifiers,
        natural_key=natural_key,
        import_defaults=defaults,
        privileged_fields=frozenset(declared_privileged) | privilege_flags(model),
        privileged=privileged is True or rows_grant_privileges(model),
    )


def _relation_problems(entities: dict[str, Entity], broken: set[str]) -> list[EntityProblem]:
    """`broken`: names whose own declaration failed (reported already, so not again as unknown)."""
    problems = []
    position = {name: index for index, name in enumerate(entities)}
    by_model = {entity.model: entity for entity in entities.values()}
    for entity in entities.values():
        unknown = [name for name in entity.companions if name not in entities and name not in broken]
        if entity.parent and entity.parent[1] not in entities and entity.parent[1] not in broken:
            unknown.append(entity.parent[1])
        if unknown:
            problems.append(
                EntityProblem("dbops.E105", f"entity {entity.name!r} names unknown entities: {', '.join(unknown)}.")
            )
        for model_field in entity.fields:
            is_key = model_field.many_to_one or model_field.one_to_one
            target = by_model.get(model_field.related_model) if is_key else None
            if target is not None and target is not entity and position[target.name] > position[entity.name]:
                problems.append(
                    EntityProblem(
                        "dbops.E106",
                        f"entity {entity.name!r} is declared before {target.name!r}, which its foreign key "
                        f"{model_field.name!r} points at: list entities in dependency order.",
                    )
                )
        if entity.parent and entity.parent[1] in entities:
            parent_field = next((f for f in entity.fields if f.name == entity.parent[0]), None)
            parent_model = entities[entity.parent[1]].model
            if parent_field is not None and parent_field.related_model is not parent_model:
                problems.append(
                    EntityProblem(
                        "dbops.E104",
                        f"entity {entity.name!r}: parent field {entity.parent[0]!r} is not a foreign key to "
                        f"{parent_model._meta.label}.",
                    )
                )
    return problems


def _rules(name: str, declared: dict, concrete: dict, problems: list[EntityProblem]) -> dict[str, Rule]:
    """The masking rules of an entity, each parsed and fitted to its field (dbops.E107 when not)."""
    rules = {}
    for field_name, text in declared.items():
        try:
            rule = rule_parse(text)
        except RuleError as exc:
            problems.append(EntityProblem("dbops.E107", f"entity {name!r}, field {field_name!r}: {exc}."))
            continue
        misfit = rule_misfit(rule, concrete[field_name]) if field_name in concrete else None
        if misfit:
            problems.append(EntityProblem("dbops.E107", f"entity {name!r}: {misfit}."))
            continue
        rules[field_name] = rule
    return rules


def _build(declarations: list[Any]) -> tuple[dict[str, Entity], list[EntityProblem]]:
    entities: dict[str, Entity] = {}
    problems: list[EntityProblem] = []
    models_seen: dict[type[models.Model], str] = {}
    broken: set[str] = set()
    for position, declaration in enumerate(declarations):
        shape = _shape_problem(position, declaration)
        if shape:
            problems.append(EntityProblem("dbops.E101", shape))
            if isinstance(declaration, dict) and isinstance(declaration.get("name"), str):
                broken.add(declaration["name"])
            continue
        name, label = declaration["name"], declaration["model"]
        model = model_for_label(label)
        if model is None:
            problems.append(EntityProblem("dbops.E102", f"entity {name!r}: {label!r} is not an installed model."))
            broken.add(name)
            continue
        if name in entities or model in models_seen:
            twice = f"name {name!r}" if name in entities else f"model {label} (also {models_seen[model]!r})"
            problems.append(EntityProblem("dbops.E103", f"entity {name!r}: {twice} is declared twice."))
            continue
        entities[name] = _entity_from(declaration, model, problems)
        models_seen[model] = name
    return entities, problems + _relation_problems(entities, broken)


# --- using them ------------------------------------------------------------------------------------


def entity_names_help() -> str:
    try:
        return ", ".join(ENTITIES) or "none declared (DBOPS['ENTITIES'])"
    except ConfigurationError as exc:  # --help still works; the system checks say what is wrong
        return f"unavailable: {exc}"


def resolve_entities(names: list[str] | str | None, *, with_companions: bool = False) -> list[Entity]:
    """The named entities (all declared ones when none are named) in dependency order: declared names, or
    `app_label.Model` labels of any installed model; unknown names are rejected."""
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    if not ENTITIES:
        raise UnknownEntityError("No data-migration entities are declared: list them in DBOPS['ENTITIES'].")
    if not names:
        return list(ENTITIES.values())
    unknown = [name for name in names if name not in ENTITIES]
    if unknown:
        raise UnknownEntityError(
            f"Unknown entit{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}. "
            f"Valid entities: {entity_names_help()}, or any installed model as app_label.Model."
        )
    wanted = {entity.name: entity for entity in (ENTITIES[name] for name in names)}
    if with_companions:
        for entity in list(wanted.values()):
            wanted.update((name, ENTITIES[name]) for name in entity.companions)
    return sorted(wanted.values(), key=ENTITIES.position)


def entity_for_model(model: type[models.Model]) -> Entity | None:
    return ENTITIES.for_model(model)
