"""The base of every dbops command: a database that cannot be reached or is not migrated yet gives one
readable line and exit 1 (CommandError), never a traceback from deep inside the ORM. Before its own
work each command repairs what interrupted restores left behind and says so on stderr.

It is also the one place where a service's DbopsError becomes a CommandError: the service speaks in its
own terms, and the command adds its option for the parameter the error is about (`--tag: The tag is
longer than 64 characters.`) and, for some errors, advice for the command-line user (`error_hints`)."""

from __future__ import annotations

import argparse
import difflib
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, ClassVar

from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import DatabaseError

from dbops.engines.errors import DatabaseProblem, database_error_facts
from dbops.exceptions import DbopsError
from dbops.management.output import console_handlers
from dbops.services.backups.leftovers import restore_leftovers_recover

# For the commands that run client tools: only the database-tagged checks (the tools are there), so they
# are neither held up (~0.1 s) nor blocked by checks of unrelated apps. `manage.py check` runs them all.
DATABASE_CHECKS_ONLY = [Tags.database]


def describe_database_error(exc: DatabaseError) -> str:
    facts = database_error_facts(exc)
    if facts.problem in (DatabaseProblem.MISSING_TABLE, DatabaseProblem.MISSING_COLUMN):
        what = "table" if facts.problem == DatabaseProblem.MISSING_TABLE else "column"
        return f"The database has no {what} {facts.name}: run `python manage.py migrate` first."
    if facts.problem == DatabaseProblem.MISSING_DATABASE:
        return (
            f"The database {facts.name} does not exist: run `python manage.py migrate` first "
            "(it creates missing databases), or check DB_NAME and OPS_DB_NAME."
        )
    if facts.problem == DatabaseProblem.UNREACHABLE:
        return facts.unreachable
    return f"Database error: {facts.text}"


@contextmanager
def _console_logs_at_warning() -> Iterator[None]:
    """The stream handlers (the console) show warnings and errors only while a command runs: its own
    output already says what an INFO line would (`-v 2` shows them; files and other handlers keep all)."""
    handlers = [handler for handler in console_handlers() if handler.level < logging.WARNING]
    levels = [handler.level for handler in handlers]
    for handler in handlers:
        handler.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def option_string(parser: argparse.ArgumentParser, dest: str, options: dict[str, Any]) -> str | None:
    """The option that sets `dest` (its long form), looking into the subcommand `options` chose; None when
    no option sets it (a positional argument, or a value the command does not take from its user)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(options.get(action.dest))
            found = chosen is not None and option_string(chosen, dest, options)
            if found:
                return found
        elif action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)  # --output, not -o
    return None


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every long option of the parser and of its subcommands."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for chosen in action.choices.values():
                found += _option_strings(chosen)
        found += [option for option in action.option_strings if option.startswith("--")]
    return found


def suggest_on_error(parser: argparse.ArgumentParser) -> None:
    """`unrecognized arguments: --dry-rn (did you mean --dry-run?)`, as Python 3.14's argparse will say."""
    report_error = parser.error

    def error(message: str):
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = sorted(set(_option_strings(parser)))
            guesses = {
                word: close[0]
                for word in message[len(prefix) :].split()
                if word.startswith("--")
                for close in [difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.7)]
                if close
            }
            if guesses:
                message += " (did you mean " + ", ".join(f"{guess}" for guess in guesses.values()) + "?)"
        report_error(message)

    parser.error = error


class DbopsCommand(BaseCommand):
    # Off only where a command must not touch a database (run by the server itself, or config display).
    recovers_leftovers = True
    # Advice for the command-line user, added to a service error of that class (the first that matches).
    error_hints: ClassVar[dict[type[DbopsError], str]] = {}

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        suggest_on_error(parser)
        return parser

    def execute(self, *args, **options):
        try:
            with _console_logs_at_warning() if options.get("verbosity", 1) < 2 else nullcontext():
                if self.recovers_leftovers:
                    self._recover_leftovers(options)
                return super().execute(*args, **options)
        except DatabaseError as exc:
            raise CommandError(describe_database_error(exc)) from exc
        except DbopsError as exc:
            raise CommandError(self.describe_error(exc, options)) from exc

    def describe_error(self, exc: DbopsError, options: dict[str, Any]) -> str:
        """The service's message, after this command's option for the parameter it is about, then any hint."""
        message = str(exc)
        if exc.parameter:
            parser = self.create_parser("manage.py", type(self).__module__.rsplit(".", 1)[-1])
            option = option_string(parser, exc.parameter, options)
            message = f"{option}: {message}" if option else message
        hint = next((hint for error_class, hint in self.error_hints.items() if isinstance(exc, error_class)), "")
        return f"{message} {hint}" if hint else message

    def _recover_leftovers(self, options) -> None:
        """Repairs a half-done restore swap (even when the database is missing) and removes dead runs'
        scratch databases and work folders, one stderr line per thing done."""
        if options.get("stderr"):  # as BaseCommand.execute will, so call_command(stderr=…) sees the lines
            self.stderr = OutputWrapper(options["stderr"])
        report = restore_leftovers_recover(log=False)
        for line in report.done:
            self.stderr.write(self.style.WARNING(line))
        for line in report.failed:
            self.stderr.write(self.style.ERROR(line))
