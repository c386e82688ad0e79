"""`migrate` that also migrates dbops's operations database.

Without --database it migrates the default database and then the operations database
(DBOPS["DATABASE"]), creating each first when the server has none by its name (and saying so), so a
new installation needs no extra step. With --database it is exactly Django's migrate. Either way a
server that cannot be reached is one readable line and exit 1, not a traceback (`--traceback` shows it)."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from dbops.conf import operations_alias
from dbops.engines import get_connector
from dbops.exceptions import DbopsError
from dbops.management.base import describe_database_error


class Command(DjangoMigrateCommand):
    help = DjangoMigrateCommand.help + " Without --database: the default database, then the operations database."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    def get_check_kwargs(self, options):
        if options["database"] is not None:
            return super().get_check_kwargs(options)
        return {**super().get_check_kwargs({**options, "database": DEFAULT_DB_ALIAS}), "databases": _aliases()}

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except DatabaseError as exc:
            raise CommandError(describe_database_error(exc)) from exc
        except DbopsError as exc:  # the maintenance connection that creates a missing database
            raise CommandError(str(exc)) from exc

    def handle(self, *args, **options):
        if options["database"] is not None:
            return super().handle(*args, **options)
        self._database_ensure(DEFAULT_DB_ALIAS, "database", options)
        super().handle(*args, **{**options, "database": DEFAULT_DB_ALIAS})
        ops = operations_alias()
        if ops == DEFAULT_DB_ALIAS:
            return None
        options["skip_checks"] = True  # checked for both databases before the first
        self._database_ensure(ops, "operations database", options)
        if options["verbosity"] >= 1:
            self.stdout.write(self.style.MIGRATE_HEADING(f"Operations database ({ops}):"))
        return super().handle(*args, **{**options, "database": ops})

    def _database_ensure(self, alias: str, what: str, options) -> None:
        connector = get_connector(alias)
        if connector.database_ensure() and options["verbosity"] >= 1:
            self.stdout.write(f"Created the {what} {connector.database_name}.")


def _aliases() -> list[str]:
    return list(dict.fromkeys([DEFAULT_DB_ALIAS, operations_alias()]))
