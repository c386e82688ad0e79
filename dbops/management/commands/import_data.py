"""import_data: validate a whole export file, then import it in one transaction (services.datamigration.imports)."""

from __future__ import annotations

from dbops.exceptions import PrivilegedImportRefused
from dbops.management.base import DbopsCommand
from dbops.management.options import (
    add_database_option,
    add_json_option,
    add_quiet_option,
    add_transform_option,
    options_named,
)
from dbops.management.output import TtyProgress, migration_run_json, rows_per_second, write_json
from dbops.services.datamigration.formats import FORMATS
from dbops.services.datamigration.imports import MODES, import_data
from dbops.services.datamigration.transformations import transformation_names


class Command(DbopsCommand):
    error_hints = {PrivilegedImportRefused: "\nPass --allow-privileged to import privileges."}
    help = (
        "Imports a file written by export_data: validates every record first (types, required fields, foreign keys, "
        "unique constraints), then writes all of it in one transaction or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--input",
            dest="input_path",
            required=True,
            help="File to read (csv: the .zip or folder export_data wrote).",
        )
        parser.add_argument("--format", dest="fmt", choices=FORMATS, required=True, help="Format of the input file.")
        parser.add_argument(
            "--mode", choices=MODES, default="insert", help="insert: existing ids are errors; upsert: update them."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and report what would change; write nothing."
        )
        parser.add_argument("--snapshot", action="store_true", help="Take a rollback snapshot of the tables first.")
        parser.add_argument(
            "--allow-privileged",
            action="store_true",
            help="Also import what grants privileges: superuser/staff flags, group, permission and role memberships "
            "(refused by default).",
        )
        parser.add_argument(
            "--match",
            default="id",
            metavar="id|natural|field:NAME",
            help="With --mode upsert, how a record finds the row it updates: by id (default); by natural key (an "
            "entity's natural_key, else its first unique field or fields), for files from another environment; or by "
            "the field NAME. Records that match no row are created with new ids.",
        )
        add_transform_option(parser, names=transformation_names())
        add_json_option(parser)
        add_quiet_option(parser)
        add_database_option(parser)

    def handle(self, *args, **options):
        with TtyProgress(self.stdout, quiet=options["quiet"] or options["json"]) as progress:
            named = options_named(
                options, "input_path", "fmt", "mode", "dry_run", "snapshot", "transforms", "allow_privileged", "match"
            )
            result = import_data(**named, using=options["database"], progress=progress if progress.enabled else None)
        if options["json"]:
            counts = ("rows", "created", "updated")
            payload = migration_run_json(
                result, entity_counts=counts, mode=result.mode, snapshot_id=result.snapshot_id, warnings=result.warnings
            )
            write_json(self.stdout, payload)
            return
        for item in result.entities:
            self.stdout.write(
                f"  {item.entity:<20} {item.rows:>12,} rows  {item.created:,} new  {item.updated:,} updated"
            )
        for warning in result.warnings:
            self.stdout.write(self.style.WARNING(f"  Note: {warning}"))
        if result.dry_run:
            self.stdout.write(f"Dry run: {result.total_rows:,} valid rows would be imported; nothing was changed.")
            return
        rate = rows_per_second(result.total_rows, result.seconds)
        snapshot = f" Snapshot {result.snapshot_id} taken first." if result.snapshot_id else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.total_rows:,} rows from {result.path} in {result.seconds:.1f}s "
                f"({rate:,.0f} rows/s).{snapshot}"
            )
        )
