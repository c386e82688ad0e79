"""import_data: validate a whole export file, then import it in one transaction (services.datamigration.imports)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from dbops.management.base import DbopsCommand
from dbops.management.output import TtyProgress, write_json
from dbops.services.datamigration.formats import FORMATS
from dbops.services.datamigration.imports import MODES, import_data
from dbops.services.datamigration.transformations import transformation_names


class Command(DbopsCommand):
    help = (
        "Imports a file written by export_data: validates every record first (types, required fields, foreign keys, "
        "unique constraints), then writes all of it in one transaction or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--input", required=True, help="File to read (csv: the .zip or folder export_data wrote).")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, required=True, help="Format of the input file.")
        parser.add_argument(
            "--mode", choices=MODES, default="insert", help="insert: existing ids are errors; upsert: update them."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and report what would change; write nothing."
        )
        parser.add_argument("--snapshot", action="store_true", help="Take a rollback snapshot of the tables first.")
        parser.add_argument(
            "--transform",
            action="append",
            default=[],
            help=f"Transformation for each record (repeatable): {', '.join(transformation_names())}.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument("--quiet", action="store_true", help="No progress output.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help='Database alias (default "default").')

    def handle(self, *args, **options):
        progress = TtyProgress(self.stdout, quiet=options["quiet"] or options["json"])
        try:
            result = import_data(
                input_path=options["input"],
                fmt=options["fmt"],
                mode=options["mode"],
                dry_run=options["dry_run"],
                snapshot=options["snapshot"],
                transforms=options["transform"],
                using=options["database"],
                progress=progress if progress.enabled else None,
            )
        finally:
            progress.close()
        if options["json"]:
            write_json(
                self.stdout,
                {
                    "format": result.format,
                    "path": result.path,
                    "mode": result.mode,
                    "dry_run": result.dry_run,
                    "entities": {
                        item.entity: {"rows": item.rows, "created": item.created, "updated": item.updated}
                        for item in result.entities
                    },
                    "snapshot_id": result.snapshot_id,
                    "seconds": round(result.seconds, 3),
                    "run_id": result.run_id,
                },
            )
            return
        for item in result.entities:
            self.stdout.write(
                f"  {item.entity:<20} {item.rows:>12,} rows  {item.created:,} new  {item.updated:,} updated"
            )
        if result.dry_run:
            self.stdout.write(f"Dry run: {result.total_rows:,} valid rows would be imported; nothing was changed.")
            return
        rate = result.total_rows / result.seconds if result.seconds else 0
        snapshot = f" Snapshot {result.snapshot_id} taken first." if result.snapshot_id else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.total_rows:,} rows from {result.path} in {result.seconds:.1f}s "
                f"({rate:,.0f} rows/s).{snapshot}"
            )
        )
