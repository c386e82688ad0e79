"""export_data: the chosen entities into a json/jsonl/csv/sql file (see dbops.services.datamigration.exports)."""

from __future__ import annotations

from datetime import date

from django.core.management.base import CommandError

from dbops.exceptions import PersonalDataFound
from dbops.management.base import DbopsCommand
from dbops.management.options import (
    add_database_option,
    add_json_option,
    add_quiet_option,
    add_transform_option,
    options_named,
)
from dbops.management.output import TtyProgress, migration_run_json, rows_per_second, write_json
from dbops.services.datamigration.entities import entity_names_help
from dbops.services.datamigration.exports import export_data, export_rules_explain
from dbops.services.datamigration.formats import FORMATS
from dbops.services.datamigration.transformations import transformation_names


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since {value!r}: expected a date like 2025-01-27.") from None


class Command(DbopsCommand):
    error_hints = {PersonalDataFound: "Pass --allow-pii-in ENTITY.FIELD to accept it."}
    help = (
        "Exports entities (users, concepts, dictionaries…) to a json, jsonl, csv (zip or folder) or sql file, "
        "streaming, optionally anonymized."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--entities", default="", help=f"Comma-separated entities (default: all). Valid: {entity_names_help()}."
        )
        parser.add_argument(
            "--output", help="File to write (csv: a .zip file or a new folder). Required unless --dry-run."
        )
        parser.add_argument(
            "--format", dest="fmt", choices=FORMATS, default="jsonl", help="File format (default jsonl)."
        )
        parser.add_argument(
            "--anonymize",
            action="store_true",
            help="Mask every column by its rule (the entity's 'anonymize' rules in DBOPS['ENTITIES']) and scan what is "
            "kept for personal data; refused when a free-text column has no rule.",
        )
        parser.add_argument(
            "--explain", action="store_true", help="Print the masking rule of every exported column; export nothing."
        )
        parser.add_argument(
            "--allow-pii-in",
            action="append",
            default=[],
            metavar="ENTITY.FIELD",
            help="Accept what the personal-data scanner finds in this field (repeatable).",
        )
        parser.add_argument(
            "--k-anonymity",
            type=int,
            metavar="K",
            help="Refuse the export unless every group of records sharing the declared quasi-identifiers has K or "
            "more records; the smallest group is printed.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report counts and estimated size; write nothing.")
        parser.add_argument(
            "--where",
            action="append",
            default=[],
            help="Filter [entity.]field OP value, OP one of = != > >= < <= (repeatable), e.g. users.is_active=true.",
        )
        parser.add_argument("--since", help="Only rows created/changed on or after this date (YYYY-MM-DD).")
        add_transform_option(parser, names=transformation_names())
        add_json_option(parser)
        add_quiet_option(parser)
        add_database_option(parser)

    def handle(self, *args, **options):
        if options["explain"]:
            self._explain(options)
            return
        if not options["output"] and not options["dry_run"]:
            raise CommandError("--output is required (or use --dry-run).")
        since = _date(options["since"]) if options["since"] else None
        with TtyProgress(self.stdout, quiet=options["quiet"] or options["json"]) as progress:
            result = export_data(
                **options_named(
                    options,
                    "entities",
                    "fmt",
                    "anonymize",
                    "dry_run",
                    "where",
                    "transforms",
                    "k_anonymity",
                    "allow_pii_in",
                ),
                output=options["output"] or "-",
                since=since,
                using=options["database"],
                progress=progress if progress.enabled else None,
            )
        if options["json"]:
            write_json(
                self.stdout,
                migration_run_json(
                    result,
                    entity_counts=("rows", "estimated_bytes"),
                    path=None if result.dry_run else result.path,
                    anonymized=result.anonymized,
                    size_bytes=result.size_bytes,
                    k_anonymity=result.k_anonymity,
                ),
            )
            return
        for item in result.entities:
            estimate = f"  ~{item.estimated_bytes:,} bytes" if item.estimated_bytes is not None else ""
            self.stdout.write(f"  {item.entity:<20} {item.rows:>12,} rows{estimate}")
        if result.dry_run:
            self.stdout.write(
                f"Dry run: would export {result.total_rows:,} rows as {result.format}; nothing was written."
            )
            return
        for entity, smallest in (result.k_anonymity or {}).items():
            self.stdout.write(f"  k-anonymity of {entity}: the smallest group has {smallest:,} record(s)")
        rate = rows_per_second(result.total_rows, result.seconds)
        self.stdout.write(
            self.style.SUCCESS(
                f"Exported {result.total_rows:,} rows to {result.path} ({result.size_bytes:,} bytes, "
                f"{result.seconds:.1f}s, {rate:,.0f} rows/s){' anonymized' if result.anonymized else ''}."
            )
        )

    def _explain(self, options) -> None:
        columns = export_rules_explain(entities=options["entities"], fmt=options["fmt"])
        if options["json"]:
            write_json(self.stdout, {"columns": [column.__dict__ for column in columns]})
            return
        for column in columns:
            rule = column.rule or ("NO RULE: refused" if column.needed else "exported as is")
            self.stdout.write(f"  {column.entity}.{column.field:<24} {rule}")
        missing = [f"{column.entity}.{column.field}" for column in columns if column.needed and not column.rule]
        if missing:
            raise CommandError(f"An anonymized export would be refused: no rule for {', '.join(missing)}.")
