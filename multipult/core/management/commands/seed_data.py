"""seed_data: realistic, reproducible data for every domain model (see multipult.core.services.seeding)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, DatabaseError

from dbops.management.base import DbopsCommand
from dbops.management.output import TtyProgress
from multipult.core.models import Role
from multipult.core.services.seeding import seed_create, seed_plan


class Command(DbopsCommand):
    help = (
        "Creates realistic, reproducible data for every domain model: about 1,000 rows per scale unit "
        "(--scale 1000 is about a million rows), the same data for the same --seed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale", type=float, default=1.0, help="Size in units of about 1,000 rows (default 1; fractions allowed)."
        )
        parser.add_argument("--seed", type=int, default=0, help="Random seed; the same seed gives the same data.")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be created and change nothing.")
        parser.add_argument("--quiet", action="store_true", help="No progress output, only the summary line.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help='Database alias to seed (default "default").')

    def handle(self, *args, **options):
        scale, seed, using = options["scale"], options["seed"], options["database"]
        if options["dry_run"]:
            plan = seed_plan(scale=scale, seed=seed, existing_roles=self._existing_roles(using))
            self.stdout.write(f"Would create {plan.total:,} rows (scale {scale:g}, seed {seed}):")
            for label, count in plan.counts.items():
                self.stdout.write(f"  {label:<20} {count:>12,}")
            self.stdout.write("Nothing was written.")
            return
        progress = TtyProgress(self.stdout, quiet=options["quiet"])
        try:
            result = seed_create(scale=scale, seed=seed, using=using, progress=progress)
        finally:
            progress.close()
        rate = result.total / result.seconds if result.seconds else 0
        if not options["quiet"]:
            for label, count in result.created.items():
                self.stdout.write(f"  {label:<20} {count:>12,}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {result.total:,} rows in {result.seconds:.1f}s ({rate:,.0f} rows/s, {result.method}), "
                f"scale {scale:g}, seed {seed}."
            )
        )

    @staticmethod
    def _existing_roles(using: str) -> list[str]:
        """Read-only: roles seed_data would skip. A dry run still works before migrate or offline."""
        try:
            return list(Role.objects.using(using).values_list("name", flat=True))
        except DatabaseError:
            return []
