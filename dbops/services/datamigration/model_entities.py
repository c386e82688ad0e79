"""Entities of any installed model, named by its label (`--entities app_label.Model`), built on demand
from the model alone: every concrete field, the model's own masking rules (`dbops_anonymize`), its
privilege flags and memberships found by what they are, an auth user's password never exported.

A label of a model the project declares is that declaration (`core.User` is `users`). Entities are
ordered by their foreign keys: a declared entity keeps its place; a model-only one comes right after
the last entity it points at (before all when it points at none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, router

from dbops.conf import operations_alias
from dbops.exceptions import UnknownEntityError

if TYPE_CHECKING:
    from django.db import models

    from dbops.services.datamigration.entities import Entity


def model_for_label(label: str) -> type[models.Model] | None:
    if not isinstance(label, str) or label.count(".") != 1:
        return None
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def model_entity_build(model: type[models.Model]) -> Entity:
    """The entity of a model nobody declared; UnknownEntityError when it cannot be moved as a whole."""
    from dbops.services.datamigration.entities import EntityProblem, _entity_from
    from dbops.services.datamigration.import_fields import unreadable_fields

    label = model._meta.label
    if model._meta.swapped:
        raise UnknownEntityError(f"{label} is swapped out for {model._meta.swapped}: name {model._meta.swapped}.")
    if model._meta.proxy or not model._meta.managed and not model._meta.auto_created:
        raise UnknownEntityError(f"{label} is a proxy or unmanaged model: export the model whose table it uses.")
    routed = router.db_for_read(model) or DEFAULT_DB_ALIAS
    if model._meta.app_label == "dbops" or routed != DEFAULT_DB_ALIAS and routed == operations_alias():
        raise UnknownEntityError(f"{label} is operations state of dbops, not data an export moves.")
    # An account model's password hash is never exported; an import gives such rows an unusable password.
    exclude = ["password"] if hasattr(model, "set_unusable_password") else []
    problems: list[EntityProblem] = []
    entity = _entity_from({"name": label, "model": label, "exclude": exclude}, model, problems)
    if problems:
        raise UnknownEntityError(f"{label}: {problems[0].message}")
    unreadable = unreadable_fields(entity)
    if unreadable:
        raise UnknownEntityError(f"{label} has fields import_data cannot read: {', '.join(unreadable)}.")
    return entity


def entity_position(entity: Entity, declared: dict[str, int], resolve) -> float:
    """Where the entity goes in dependency order: a declared one at its index; a model-only one just after
    the furthest entity its foreign keys point at (`resolve(model)` gives that entity, or None)."""
    if entity.name in declared:
        return declared[entity.name]
    return _after_targets(entity.model, declared, resolve, seen=set())


def _after_targets(model, declared: dict[str, int], resolve, *, seen: set) -> float:
    seen.add(model)
    furthest = -1.0
    for model_field in model._meta.concrete_fields:
        target = model_field.related_model if (model_field.many_to_one or model_field.one_to_one) else None
        if target is None or target in seen:
            continue  # a self-reference (a tree) or a cycle: its rows are in this same table or already placed
        target_entity = resolve(target)
        if target_entity is not None and target_entity.name in declared:
            furthest = max(furthest, declared[target_entity.name] + 0.5)
        else:
            furthest = max(furthest, _after_targets(target, declared, resolve, seen=seen) + 0.25)
    return furthest
