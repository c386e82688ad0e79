"""What in a record grants a privilege, found by what the fields and tables are, not by a declaration:
import_data refuses these unless it is allowed to import privileges."""

from __future__ import annotations

import re

from django.conf import settings
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


# Rows that say what a permission is: rewriting one (say codename add_logentry to change_user) changes what
# every existing grant of it gives. And the session table: a row is a logged-in browser.
DEFINES_PRIVILEGES = ("auth.Permission", "contenttypes.ContentType", "sessions.Session")
# A field named like a secret in a model that points at accounts: its rows are credentials (API tokens, keys)
_CREDENTIAL_NAME = re.compile(r"(^|_)(token|digest|secret|key|password|passphrase|otp)(_|$)")


def rows_grant_privileges(model: type[models.Model]) -> bool:
    """Every row of the model grants or defines a privilege: a many-to-many table that gives someone an
    auth group or a permission, the permission and content-type definitions, sessions, and credentials
    of accounts (a model with a foreign key to the user model and a field named like a secret)."""
    if model._meta.label in DEFINES_PRIVILEGES:
        return True
    relations = [f for f in model._meta.concrete_fields if f.many_to_one and f.related_model is not None]
    targets = {model_field.related_model._meta.label for model_field in relations}
    if model._meta.auto_created and targets & set(PRIVILEGE_MODELS):
        return True
    points_at_accounts = any(
        model_field.related_model._meta.label == settings.AUTH_USER_MODEL for model_field in relations
    )
    return points_at_accounts and any(
        _CREDENTIAL_NAME.search(model_field.name.lower())
        for model_field in model._meta.concrete_fields
        if not model_field.is_relation
    )
