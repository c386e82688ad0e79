"""health_check: database, migrations, Redis, celery workers, S3, disk and backup ages.

Exit status 0 healthy, 1 degraded, 2 unhealthy (see dbops.services.ops.health for what each means).
"""

from __future__ import annotations

from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option, add_json_option
from dbops.management.output import write_json
from dbops.services.ops.health import DEGRADED, OK, SKIPPED, UNHEALTHY, health_check


class Command(DbopsCommand):
    help = (
        "Checks the database (connect and latency), migrations, Redis, celery workers, the S3 bucket, free disk "
        "in BACKUP_DIR and the age of the last successful and last verified backup. "
        "Exit status: 0 healthy, 1 degraded, 2 unhealthy."
    )
    # The checks themselves are what this command reports; system checks must not stop it first.
    requires_system_checks = []
    recovers_leftovers = False  # the repair is one of its checks (interrupted_restores)

    def add_arguments(self, parser):
        add_json_option(parser, what="the report")
        add_database_option(parser)

    def handle(self, *args, **options):
        report = health_check(using=options["database"])
        if options["json"]:
            write_json(self.stdout, report.as_dict())
        else:
            styles = {
                OK: self.style.SUCCESS,
                SKIPPED: str,
                DEGRADED: self.style.WARNING,
                UNHEALTHY: self.style.ERROR,
            }
            width = max(len(check.name) for check in report.checks)
            for check in report.checks:
                label = styles[check.status](f"{check.status:<9}")
                self.stdout.write(f"  {check.name:<{width}}  {label}  {check.message}")
            self.stdout.write(styles[report.status](f"Overall: {report.status}"))
        if report.exit_code:
            self.stdout.flush()
            raise SystemExit(report.exit_code)
