"""assign_role: gives a user a role (idempotent)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from dbops.management.base import DbopsCommand
from multipult.core.services.users import role_assign


class Command(DbopsCommand):
    help = (
        "Gives the user with --user-id (or --username) the role named --role. "
        "Unknown user or role: an error, nothing changes."
    )

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user-id", type=int, help="Id of the user (see the admin or the API).")
        who.add_argument("--username", help="Username of the user, e.g. alice.")
        parser.add_argument("--role", required=True, help="Name of an existing role, e.g. editor.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help='Database alias (default "default").')

    def handle(self, *args, **options):
        assignment = role_assign(
            user_id=options["user_id"],
            username=options["username"],
            role_name=options["role"],
            using=options["database"],
        )
        user, role = assignment.user, assignment.role
        if assignment.added:
            self.stdout.write(self.style.SUCCESS(f"User #{user.pk} {user.username} now has the role {role.name}."))
        else:
            self.stdout.write(f"User #{user.pk} {user.username} already had the role {role.name}; nothing changed.")
