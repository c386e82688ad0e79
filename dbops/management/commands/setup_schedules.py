"""setup_schedules: the default celery beat schedules and retention policy (idempotent)."""

from __future__ import annotations

from dbops.management.base import DbopsCommand
from dbops.management.options import add_json_option
from dbops.management.output import write_json
from dbops.services.ops.scheduling import schedules_setup


class Command(DbopsCommand):
    help = (
        "Creates the default periodic tasks (nightly backup, nightly retention, weekly restore test, hourly "
        "upload retry, weekly pruning of rollback snapshots older than 30 days) and the 'default' retention "
        "policy where missing. Existing ones are left as staff "
        "edited them in the admin; safe to run on every deploy."
    )

    def add_arguments(self, parser):
        add_json_option(parser, what="what was created and what existed")

    def handle(self, *args, **options):
        setup = schedules_setup()
        if options["json"]:
            write_json(self.stdout, {"created": setup.created, "existing": setup.existing})
            return
        for name in setup.created:
            self.stdout.write(f"created  {name}")
        for name in setup.existing:
            self.stdout.write(f"exists   {name} (left unchanged)")
        self.stdout.write(
            self.style.SUCCESS(f"{len(setup.created)} created, {len(setup.existing)} already there.")
            + " Edit, enable or disable them in the admin under Periodic Tasks."
        )
