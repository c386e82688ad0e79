"""validate_config: every configuration problem at once, exit 1 if there is any."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.management.output import write_json
from multipult.core.services.configuration import config_validate


class Command(DbopsCommand):
    help = (
        "Checks every setting the project reads (types, ranges, S3 settings complete, BACKUP_DIR writable, "
        "database reachable; Redis, the S3 bucket and the mail server reachable with --deep) and lists all "
        "problems at once. Exit status 1 when there is any problem."
    )
    # It diagnoses the environment itself, so it must run even where checks (or settings) would fail.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--deep", action="store_true", help="Also connect to Redis, the S3 bucket and the mail server (EMAIL_HOST)."
        )
        parser.add_argument("--json", action="store_true", help="Print the problems as a JSON document.")

    def handle(self, *args, **options):
        problems = config_validate(deep=options["deep"])
        if options["json"]:
            write_json(self.stdout, {"ok": not problems, "problems": [vars(problem) for problem in problems]})
        elif not problems:
            scope = "including Redis, S3 and mail" if options["deep"] else "use --deep for Redis, S3 and mail"
            self.stdout.write(self.style.SUCCESS(f"Configuration OK ({scope})."))
        else:
            for problem in problems:
                self.stdout.write(f"  - {problem}")
        if problems:
            raise CommandError(f"{len(problems)} configuration problem(s); see the list above.", returncode=1)
