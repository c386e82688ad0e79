"""list_backups: the backup catalog, newest first, as a table or JSON, cut at --limit."""

from __future__ import annotations

from dbops.artifacts.manifest import manifest_of
from dbops.management.base import DATABASE_CHECKS_ONLY, DbopsCommand
from dbops.management.options import add_json_option, add_limit_option
from dbops.management.output import human_bytes, page_json, page_of, write_json, write_more
from dbops.models import BackupRecord
from dbops.services.backups.catalog import looks_stale
from dbops.services.backups.create import backups_list, catalog_sync


class Command(DbopsCommand):
    help = (
        "Lists the backup catalog, newest first, at most --limit records: a table, or with --json one document "
        '{"total": N, "limit": N, "backups": [...]} (total counts every record that matches).'
    )

    requires_system_checks = DATABASE_CHECKS_ONLY

    def add_arguments(self, parser):
        add_json_option(parser, what="the records")
        parser.add_argument(
            "--status",
            action="append",
            choices=BackupRecord.Status.values,
            help="Only records with this status (repeatable).",
        )
        parser.add_argument("--database", default=None, help="Only backups of this database alias.")
        add_limit_option(parser, what="records")
        parser.add_argument(
            "--quiet",
            action="store_true",
            help="Only the rows: no header, no sync summary (how many were left out goes to stderr).",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="First rebuild the catalog from the manifests in storage (local and S3).",
        )

    def handle(self, *args, **options):
        if options["sync"]:
            result = catalog_sync()
            if not options["json"] and not options["quiet"]:
                self.stdout.write(
                    f"Synced from storage: {len(result.created)} added, {len(result.updated)} updated, "
                    f"{len(result.missing)} now missing, {len(result.reappeared)} found again."
                )
                for message in result.messages:
                    self.stdout.write(f"  {message}")
        page = page_of(backups_list(status=options["status"], database=options["database"]), limit=options["limit"])
        if options["json"]:
            write_json(self.stdout, page_json(page, "backups", [_as_json(record) for record in page.items]))
            return
        if not page.total:
            if not options["quiet"]:
                self.stdout.write("No backups.")
            return
        if not options["quiet"]:
            self.stdout.write(
                f"{'id':>5}  {'started (UTC)':<19}  {'kind':<6}  {'status':<9}  {'format':<6}  {'compr':<5}  "
                f"{'size':>10}  {'where':<9}  tag / error"
            )
        for record in page.items:
            self.stdout.write(_as_row(record))
        write_more(self.stderr if options["quiet"] else self.stdout, page, "records")


def _as_json(record: BackupRecord) -> dict:
    return {
        **manifest_of(record),
        "location": record.location,
        "local_presence": record.local_presence,
        "s3_presence": record.s3_presence,
        "error": record.error,
    }


def _as_row(record: BackupRecord) -> str:
    status = "stale?" if looks_stale(record) else record.status
    note = record.error or record.upload_error or record.tag
    return (
        f"{record.pk:>5}  {record.started_at:%Y-%m-%d %H:%M:%S}  {record.kind:<6}  {status:<9}  "
        f"{record.format:<6}  {record.compression + ('+enc' if record.encrypted else ''):<5}  "
        f"{human_bytes(record.size_bytes):>10}  {record.places():<9}  {note[:60]}"
    )
