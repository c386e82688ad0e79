"""Closing the loop: the accepted indexes as a Django migration of one app (`AddIndexConcurrently` on
PostgreSQL, so writers are not blocked while it builds; `AddIndex` elsewhere), and the `Meta.indexes`
lines to paste into the models, without which the next `makemigrations` would remove them again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, migrations
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.writer import MigrationWriter

from dbops.engines import get_connector
from dbops.exceptions import AnalyzerError
from dbops.instrumentation.index_advice import IndexSuggestion
from dbops.instrumentation.index_django import django_index_object, model_columns

MIGRATION_SUFFIX = "dbops_advised_indexes"


@dataclass
class IndexMigration:
    path: Path
    name: str  # the migration's name, e.g. 0007_dbops_advised_indexes
    meta_indexes: dict[str, list[str]] = field(default_factory=dict)  # model label -> Meta.indexes lines
    skipped: list[tuple[IndexSuggestion, str]] = field(default_factory=list)  # not of this app, and why


def index_migration_write(
    *, app_label: str, suggestions: list[IndexSuggestion], using: str = DEFAULT_DB_ALIAS
) -> IndexMigration:
    """Writes the migration adding `suggestions` (those on models of `app_label`) after the app's latest one."""
    try:
        app_config = apps.get_app_config(app_label)
    except LookupError as exc:
        raise AnalyzerError(f"No installed app {app_label!r} to write the migration into.", parameter="app") from exc
    concurrently = get_connector(using).supports_concurrent_indexes
    operations, meta_indexes, skipped = [], {}, []
    for suggestion in dict((s.create_index_sql, s) for s in suggestions).values():
        if suggestion.model is None or suggestion.model.split(".")[0] != app_config.label:
            skipped.append((suggestion, f"{suggestion.table} is not a table of a model of {app_config.label}"))
            continue
        model_label, by_column = model_columns(suggestion.table)
        index = django_index_object(suggestion.candidate, name=suggestion.name, by_column=by_column)
        model_name = apps.get_model(model_label)._meta.model_name
        operation = migrations.AddIndex if not concurrently else _concurrent_operation()
        operations.append(operation(model_name=model_name, index=index))
        meta_indexes.setdefault(model_label, []).append(suggestion.django_index)
    if not operations:
        raise AnalyzerError(f"No accepted index is on a model of {app_config.label}; no migration written.")
    loader = MigrationLoader(None, ignore_no_migrations=True)
    leaves = loader.graph.leaf_nodes(app_config.label)
    if not leaves:
        raise AnalyzerError(f"App {app_config.label} has no migrations yet; run makemigrations first.")
    number = max((MigrationAutodetector.parse_number(name) or 0) for _, name in leaves) + 1
    name = f"{number:04d}_{MIGRATION_SUFFIX}"
    migration = type(
        "Migration",
        (migrations.Migration,),
        {"dependencies": sorted(leaves), "operations": operations},
    )(name, app_config.label)
    writer = MigrationWriter(migration)
    path = Path(writer.path)
    if path.exists():
        raise AnalyzerError(f"{path} exists already; not overwriting it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = writer.as_string()
    if concurrently:  # MigrationWriter does not write `atomic`; CREATE INDEX CONCURRENTLY cannot run in a transaction
        text = text.replace(
            "class Migration(migrations.Migration):\n",
            "class Migration(migrations.Migration):\n    atomic = False\n\n",
            1,
        )
    path.write_text(text)
    return IndexMigration(path=path, name=name, meta_indexes=meta_indexes, skipped=skipped)


def _concurrent_operation():
    from django.contrib.postgres.operations import AddIndexConcurrently  # PostgreSQL only

    return AddIndexConcurrently
