"""list_backups: the backup catalog, newest first, as a table or JSON."""

from __future__ import annotations

from django.core.checks import Tags
from django.core.management.base import CommandError

from dbops.artifacts.manifest import manifest_of
from dbops.management.base import DbopsCommand
from dbops.management.output import human_bytes, write_json
from dbops.models import BackupRecord
from dbops.services.backups.catalog import looks_stale
from dbops.services.backups.create import backups_list, catalog_sync


class Command(DbopsCommand):
    help = "Lists the backup catalog, newest first (human table, or --json)."

    # Only the database-tagged checks (client tools present): not held up (~0.1 s) or blocked by checks
    # of unrelated apps. `manage.py check` runs them all.
    requires_system_checks = [Tags.database]

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the records as one JSON array.")
        parser.add_argument(
            "--status",
            action="append",
            choices=BackupRecord.Status.values,
            help="Only records with this status (repeatable).",
        )
        parser.add_argument("--database", default=None, help="Only backups of this database alias.")
        parser.add_argument("--limit", type=int, default=None, help="At most this many records.")
        parser.add_argument("--quiet", action="store_true", help="Only the rows: no header, no sync summary.")
        parser.add_argument(
            "--sync",
            action="store_true",
            help="First rebuild the catalog from the manifests in storage (local and S3).",
        )

    def handle(self, *args, **options):
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        if options["sync"]:
            result = catalog_sync()
            if not options["json"] and not options["quiet"]:
                self.stdout.write(
                    f"Synced from storage: {len(result.created)} added, {len(result.updated)} updated, "
                    f"{len(result.missing)} now missing, {len(result.reappeared)} found again."
                )
                for message in result.messages:
                    self.stdout.write(f"  {message}")
        records = list(backups_list(status=options["status"], database=options["database"], limit=options["limit"]))
        if options["json"]:
            write_json(
                self.stdout,
                [
                    {
                        **manifest_of(r),
                        "location": r.location,
                        "local_presence": r.local_presence,
                        "s3_presence": r.s3_presence,
                        "error": r.error,
                    }
                    for r in records
                ],
            )
            return
        if not records:
            if not options["quiet"]:
                self.stdout.write("No backups.")
            return
        header = (
            f"{'id':>5}  {'started (UTC)':<19}  {'kind':<6}  {'status':<9}  {'format':<6}  {'compr':<5}  "
            f"{'size':>10}  {'where':<9}  tag / error"
        )
        if not options["quiet"]:
            self.stdout.write(header)
        for record in records:
            status = "stale?" if looks_stale(record) else record.status
            note = record.error or record.upload_error or record.tag
            self.stdout.write(
                f"{record.pk:>5}  {record.started_at:%Y-%m-%d %H:%M:%S}  {record.kind:<6}  {status:<9}  "
                f"{record.format:<6}  {record.compression + ('+enc' if record.encrypted else ''):<5}  "
                f"{human_bytes(record.size_bytes):>10}  {_where(record):<9}  {note[:60]}"
            )


def _where(record: BackupRecord) -> str:
    """local / s3 / local+s3 for the copies present; `!` marks a copy found damaged, `?` a missing one."""
    marks = {"present": "", "damaged": "!", "missing": "?"}
    parts = [
        f"{place}{marks[presence]}"
        for place, presence in (("local", record.local_presence), ("s3", record.s3_presence))
        if presence in marks
    ]
    return "+".join(parts) or "-"
