"""apply_retention: grandfather-father-son retention over the backup catalog (dbops.services.backups.retention)."""

from __future__ import annotations

from django.core.management.base import CommandError

from dbops.exceptions import NoRetentionPolicy
from dbops.management.base import DbopsCommand
from dbops.management.options import add_database_option, add_json_option, count, options_named
from dbops.management.output import write_json
from dbops.services.backups.retention import RetentionRun, retention_run


class Command(DbopsCommand):
    help = (
        "Deletes the backups a retention policy no longer keeps (local file, S3 copy and record) and the "
        "<db>_pre_restore_<time> databases older than the newest one. Without --policy or counts, every "
        "enabled policy is applied. Keeps the newest successful and the newest verified backup, pinned and running "
        "backups, what a recovery window needs, and everything when the rules would leave no successful backup."
    )

    error_hints = {NoRetentionPolicy: "Or give counts: --daily/--weekly/--monthly/--keep-last."}

    def add_arguments(self, parser):
        parser.add_argument(
            "--policy",
            dest="policy_name",
            help="Name of the RetentionPolicy to apply (default: every enabled policy).",
        )
        parser.add_argument("--daily", type=count, help="Keep the newest backup of each of the last N days.")
        parser.add_argument("--weekly", type=count, help="Keep the newest backup of each of the last N ISO weeks.")
        parser.add_argument("--monthly", type=count, help="Keep the newest backup of each of the last N months.")
        parser.add_argument("--keep-last", type=count, help="Also keep the newest N successful backups.")
        parser.add_argument(
            "--recovery-window",
            dest="recovery_window_days",
            type=count,
            help="PITR base backups: keep what restoring to any point of the last N days needs (and its WAL).",
        )
        add_database_option(parser, what="Database alias for a run given by counts only")
        parser.add_argument("--tag", default="", help="With counts only: apply them to backups with this tag only.")
        parser.add_argument("--dry-run", action="store_true", help="Print the keep/delete list and change nothing.")
        add_json_option(parser, what="the plan and outcome")
        parser.add_argument("--quiet", action="store_true", help="Print only the summary line.")

    def handle(self, *args, **options):
        run = retention_run(
            **options_named(
                options,
                "policy_name",
                "daily",
                "weekly",
                "monthly",
                "keep_last",
                "recovery_window_days",
                "database",
                "tag",
            ),
            dry_run=options["dry_run"],
        )
        if options["json"]:
            write_json(self.stdout, run.as_dict())
        else:
            self._print(run, quiet=options["quiet"])
        if not run.ok:
            raise CommandError("Retention finished with failures (see above); the other deletions were done.")

    def _print(self, run: RetentionRun, *, quiet: bool) -> None:
        for line in run.leftovers.done:
            self.stdout.write(line)
        for line in run.leftovers.failed:
            self.stderr.write(line)
        verb = "would delete" if run.dry_run else "delete"
        for outcome in run.outcomes:
            plan = outcome.plan
            if outcome.error:
                self.stderr.write(f"{plan.policy_name}: not applied: {outcome.error}")
                continue
            if not quiet:
                self.stdout.write(f"Policy {plan.policy_name} at {plan.now:%Y-%m-%d %H:%M %Z}:")
                for decision in plan.decisions:
                    backup = decision.backup
                    action = "keep" if decision.keep else verb
                    self.stdout.write(
                        f"  {action:<12} #{backup.pk:<6} {backup.started_at:%Y-%m-%d %H:%M} {backup.kind:<6} "
                        f"{backup.status:<9} {decision.reason}"
                    )
                for pk, error in outcome.failed:
                    self.stderr.write(f"  failed       #{pk}: {error}")
                for pk, why in outcome.skipped:
                    self.stdout.write(f"  skipped      #{pk}: {why}")
            for window in plan.windows:
                self.stdout.write(window.summary)
            done = len(plan.delete) if run.dry_run else len(outcome.deleted)
            self.stdout.write(
                f"{plan.policy_name}: kept {len(plan.keep)}, {'would delete' if run.dry_run else 'deleted'} {done}"
                + (f", failed {len(outcome.failed)}" if outcome.failed else "")
                + "."
            )
        for prune in run.pre_restore:
            names = prune.would_drop if run.dry_run else prune.dropped
            if names or prune.failed:
                label = "would drop" if run.dry_run else "dropped"
                self.stdout.write(f"Pre-restore databases of {prune.database}: {label} {', '.join(names) or 'none'}")
                for name, error in prune.failed:
                    self.stderr.write(f"  could not drop {name}: {error}")
        if run.wal is not None:
            self._print_wal(run)
        if run.dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was deleted."))

    def _print_wal(self, run: RetentionRun) -> None:
        wal = run.wal
        if wal.skipped:
            self.stdout.write(f"Archived WAL ({wal.storage}): not pruned, {wal.skipped}.")
            return
        by_cluster = wal.would_delete if run.dry_run else wal.deleted
        for cluster_id, names in by_cluster.items():
            label = "would delete" if run.dry_run else "deleted"
            self.stdout.write(f"Archived WAL of cluster {cluster_id} ({wal.storage}): {label} {len(names)} files")
        for name, error in wal.failed:
            self.stderr.write(f"  could not delete WAL {name}: {error}")
