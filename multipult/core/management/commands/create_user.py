"""create_user: one account; the password comes from an environment variable or a prompt, never argv."""

from __future__ import annotations

import getpass
import os
import sys

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS

from dbops.management.base import DbopsCommand
from multipult.core.services.users import password_problems, user_create

PROMPT_ATTEMPTS = 3


class Command(DbopsCommand):
    help = (
        "Creates a user. The password is read from the environment variable named by --password-from-env, "
        "or prompted for on a terminal; it is never accepted on the command line."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # No abbreviations: "--password SECRET" must fail, not be read as "--password-from-env SECRET".
        parser = super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)
        report_error = parser.error

        def error(message: str):
            if message.startswith("unrecognized arguments"):  # would echo a password typed by mistake
                message = (
                    "unrecognized arguments (a password is never accepted on the command line: "
                    "use --password-from-env VAR or the prompt)"
                )
            report_error(message)

        parser.error = error
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True, help="Login name (letters, digits and @/./+/-/_).")
        parser.add_argument("--email", required=True, help="Email address.")
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--password-from-env",
            metavar="VAR",
            help="Name of the environment variable holding the password (e.g. NEW_USER_PASSWORD).",
        )
        source.add_argument(
            "--no-password", action="store_true", help="Create the user with an unusable password (cannot log in)."
        )
        parser.add_argument("--superuser", action="store_true", help="Make the user staff and superuser.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help='Database alias (default "default").')

    def handle(self, *args, **options):
        password = None
        if not options["no_password"]:
            password = self._password(options["password_from_env"], options["username"], options["email"])
        user = user_create(
            username=options["username"],
            email=options["email"],
            password=password,
            superuser=options["superuser"],
            using=options["database"],
        )
        kind = "superuser" if user.is_superuser else "user"
        self.stdout.write(self.style.SUCCESS(f"Created {kind} #{user.pk} {user.username} <{user.email}>."))

    def _password(self, variable: str | None, username: str, email: str) -> str:
        if variable:
            password = os.environ.get(variable)
            if not password:
                # The name is not echoed: a password typed there by mistake must not reach the output.
                raise CommandError("The environment variable named by --password-from-env is not set or is empty.")
            return password
        if not sys.stdin.isatty():
            raise CommandError(
                "No password given: use --password-from-env VAR, --no-password, or run on a terminal to be prompted."
            )
        # as createsuperuser does: a refused password is asked for again, a few times
        for _attempt in range(PROMPT_ATTEMPTS):
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                self.stderr.write("The two passwords differ; try again.")
                continue
            problems = password_problems(username, email, password) if password else ["The password is empty."]
            if not problems:
                return password
            self.stderr.write(" ".join(problems) + " Try another.")
        raise CommandError(f"No usable password after {PROMPT_ATTEMPTS} attempts; nothing was created.")
