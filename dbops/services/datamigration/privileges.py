"""What in a record grants a privilege, found by what the fields and tables are, not by a declaration:
import_data refuses these unless it is allowed to import privileges."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.db import models

# Flags that make an account powerful; any model that has them as boolean fields gets them as privileged.
PRIVILEGE_FLAGS = ("is_superuser", "is_staff")
# Rows of a many-to-many table towards one of these models grant permissions (auth groups and permissions).
PRIVILEGE_MODELS = ("auth.Group", "auth.Permission")


def privilege_flags(model: type[models.Model]) -> frozenset[str]:
    """The superuser/staff flags of an account model, found by what they are, not by a declaration."""
    flags = set()
    for name in PRIVILEGE_FLAGS:
        try:
            model_field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if isinstance(model_field, models.BooleanField):
            flags.add(name)
    return frozenset(flags)


def grants_permissions(model: type[models.Model]) -> bool:
    """A many-to-many table whose rows give someone an auth group or a permission."""
    targets = {
        model_field.related_model._meta.label
        for model_field in model._meta.concrete_fields
        if model_field.many_to_one and model_field.related_model is not None
    }
    return bool(model._meta.auto_created) and bool(targets & set(PRIVILEGE_MODELS))
