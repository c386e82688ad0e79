"""`migrate` that also migrates dbops's operations database.

Without --database it migrates the default database and then the operations database
(DBOPS["DATABASE"]), creating that one first when the server has none by its name, so a new
installation needs no extra step. With --database it is exactly Django's migrate."""

from __future__ import annotations

from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import DEFAULT_DB_ALIAS

from dbops.conf import operations_alias
from dbops.engines import get_connector


class Command(DjangoMigrateCommand):
    help = DjangoMigrateCommand.help + " Without --database: the default database, then the operations database."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    def get_check_kwargs(self, options):
        if options["database"] is not None:
            return super().get_check_kwargs(options)
        return {**super().get_check_kwargs({**options, "database": DEFAULT_DB_ALIAS}), "databases": _aliases()}

    def handle(self, *args, **options):
        if options["database"] is not None:
            return super().handle(*args, **options)
        super().handle(*args, **{**options, "database": DEFAULT_DB_ALIAS})
        ops = operations_alias()
        if ops == DEFAULT_DB_ALIAS:
            return None
        options["skip_checks"] = True  # checked for both databases before the first
        connector = get_connector(ops)
        if connector.database_ensure() and options["verbosity"] >= 1:
            self.stdout.write(f"Created the operations database {connector.database_name}.")
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.MIGRATE_HEADING(f"Operations database ({ops}):"))
        return super().handle(*args, **{**options, "database": ops})


def _aliases() -> list[str]:
    return list(dict.fromkeys([DEFAULT_DB_ALIAS, operations_alias()]))
