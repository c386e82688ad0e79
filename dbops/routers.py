"""Sends the operations state to its own database (DBOPS["DATABASE"]), apart from the data it protects.

A restore replaces the application's database; with the catalog, task runs, schedules and policies
elsewhere, none of them is rewound by it (README: "What survives what"). django-celery-beat's
models go with them: the admin edits schedules there and the beat scheduler reads them through the
ORM, which follows routers (its only unrouted call, a transaction.commit() for MySQL's repeatable
read, does nothing on PostgreSQL or SQLite in autocommit).
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from dbops.conf import operations_alias

OPERATIONS_APPS = frozenset({"dbops", "django_celery_beat"})


class OperationsRouter:
    def _is_operations(self, model) -> bool:
        return model._meta.app_label in OPERATIONS_APPS

    def db_for_read(self, model, **hints):
        return operations_alias() if self._is_operations(model) else None

    def db_for_write(self, model, **hints):
        return operations_alias() if self._is_operations(model) else None

    def allow_relation(self, obj1, obj2, **hints):
        if operations_alias() == DEFAULT_DB_ALIAS:
            return None
        # Rows of the two databases cannot reference each other.
        return self._is_operations(type(obj1)) == self._is_operations(type(obj2))

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        ops = operations_alias()
        if ops == DEFAULT_DB_ALIAS:
            return None
        if app_label in OPERATIONS_APPS:
            return db == ops
        if db == ops:
            return False  # the operations database holds nothing else
        return None
