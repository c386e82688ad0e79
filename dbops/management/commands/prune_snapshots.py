"""prune_snapshots: drop old rollback snapshots (see dbops.services.datamigration.snapshots.snapshot_prune)."""

from __future__ import annotations

from dataclasses import asdict

from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option, add_json_option
from dbops.management.output import write_json
from dbops.services.datamigration.snapshots import snapshot_prune


def _count(option: str, raw: str | None) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise CommandError(
            f"{option} must be a whole number of {'days' if 'older' in option else 'snapshots'}, got {raw!r}."
        ) from None


class Command(DbopsCommand):
    help = (
        "Deletes rollback snapshots taken more than --older-than DAYS ago: drops their copy tables and deletes "
        "their records. Never the --keep-last N newest, never one whose rollback is running. --dry-run only lists."
    )

    def add_arguments(self, parser):
        # Plain strings, checked in handle(), so every bad value gets one line instead of argparse's usage text.
        parser.add_argument(
            "--older-than",
            dest="older_than_days",  # the service's keyword, so its errors are prefixed with this option
            metavar="DAYS",
            help="Required: prune snapshots taken more than DAYS days ago (0 or more).",
        )
        parser.add_argument(
            "--keep-last", metavar="N", default="0", help="Always keep the N newest snapshots, however old (default 0)."
        )
        parser.add_argument("--dry-run", action="store_true", help="List what would be pruned; change nothing.")
        add_json_option(parser)
        add_database_option(parser)

    def handle(self, *args, **options):
        if options["older_than_days"] is None:
            raise CommandError("Say how old a snapshot must be to go: --older-than DAYS (e.g. --older-than 30).")
        older_than, keep_last = (
            _count("--older-than", options["older_than_days"]),
            _count("--keep-last", options["keep_last"]),
        )
        result = snapshot_prune(
            older_than_days=older_than, keep_last=keep_last, dry_run=options["dry_run"], using=options["database"]
        )
        if options["json"]:
            write_json(
                self.stdout,
                {
                    "dry_run": result.dry_run,
                    "older_than_days": result.older_than_days,
                    "keep_last": result.keep_last,
                    "cutoff": result.cutoff,
                    "pruned": [asdict(snapshot) for snapshot in result.pruned],
                    "skipped_in_rollback": result.skipped_in_rollback,
                    "kept": result.kept,
                    "freed_bytes": result.freed_bytes,
                },
            )
            return
        verb = "would prune" if result.dry_run else "pruned"
        for snapshot in result.pruned:
            self.stdout.write(
                f"{verb}  {snapshot.id}  {snapshot.created_at[:19]}  {snapshot.status:<11}  "
                f"{snapshot.size_bytes:>12,} B  {', '.join(snapshot.tables)}"
            )
        for snapshot_id in result.skipped_in_rollback:
            self.stdout.write(f"skipped  {snapshot_id} (a rollback is using it)")
        summary = (
            f"{len(result.pruned)} snapshot(s) {verb} ({result.freed_bytes:,} B), {result.kept} kept "
            f"(taken since {result.cutoff[:19]} or among the {result.keep_last} newest)."
        )
        self.stdout.write(self.style.SUCCESS(summary) + (" Dry run: nothing changed." if result.dry_run else ""))
