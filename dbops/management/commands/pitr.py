"""pitr setup | base-backup | restore | restore-table | mark | drill | status | check: point-in-time recovery."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime

from dbops.management.base import DbopsCommand
from dbops.management.options import (
    add_database_option,
    add_json_option,
    add_limit_option,
    add_quiet_option,
    add_storage_option,
    options_named,
)
from dbops.management.output import TtyProgress, cut_lists, page_json, page_of, write_json, write_more
from dbops.services.pitr.check import pitr_check
from dbops.services.pitr.drill import pitr_drill_run
from dbops.services.pitr.recovery import pitr_base_backup_create, pitr_restore, pitr_settings_check
from dbops.services.pitr.restore_targets import pitr_mark, restore_target_resolve
from dbops.services.pitr.status import PitrClusterStatus, pitr_status
from dbops.services.pitr.table_restore import pitr_table_restore


class Command(DbopsCommand):
    help = (
        "Point-in-time recovery: `setup` checks the server's WAL settings (and prints the fixes), `base-backup` "
        "takes a physical base backup of the cluster, `restore` builds a data directory recovered to a moment, "
        "`status` lists base backups and WAL gaps, `check` proves the server's WAL reaches the archive now."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="setup|base-backup|restore|restore-table|mark|drill|status|check"
        )
        setup = actions.add_parser("setup", help="Print and validate wal_level, archive_mode, archive_command.")
        add_json_option(setup, what="the report")
        setup.add_argument("--python", help="Interpreter the server should run manage.py with (default: this one).")
        setup.add_argument(
            "--spool",
            help="Configure the asynchronous archiver instead (manage.py wal_archiver --spool SPOOL): archive_command "
            "only waits for its acknowledgement of each WAL file in this folder.",
        )
        base = actions.add_parser("base-backup", help="Take a base backup (a physical copy of the whole cluster).")
        add_storage_option(base, what="Where to store it")
        add_json_option(base, what="the catalog row")
        add_quiet_option(base)
        restore = actions.add_parser("restore", help="Build a data directory recovered to one target.")
        targets = restore.add_mutually_exclusive_group(required=True)
        targets.add_argument("--target-time", help='The moment to recover to, with timezone: "2026-01-27 12:00:00+00".')
        targets.add_argument("--target-lsn", help="The WAL position to recover to, e.g. 0/3000028.")
        targets.add_argument("--target-xid", help="Recover up to this transaction id, committed (needs --backup-id).")
        targets.add_argument("--target-name", help="Recover to this restore point (made by `pitr mark NAME`).")
        restore.add_argument(
            "--target-dir", required=True, help="New (or empty) directory for the data directory (see --delta)."
        )
        restore.add_argument(
            "--delta",
            action="store_true",
            help="Restore over an existing data directory of a stopped server: files that match the backup are "
            "kept, the others rewritten, extra files removed. Needs --confirm.",
        )
        restore.add_argument("--confirm", action="store_true", help="With --delta: yes, rewrite that directory.")
        restore.add_argument("--backup-id", type=int, help="Use this base backup (default: newest before the target).")
        restore.add_argument("--port", type=int, help="Port the restored server will listen on.")
        restore.add_argument("--owner", help="Give the directory to this OS user (e.g. postgres); needs root.")
        restore.add_argument(
            "--keep-archiving",
            action="store_true",
            help="Keep archive_mode as in the backup (default: off, so a copy never writes into the source's archive).",
        )
        restore.add_argument(
            "--python", help="Interpreter the restored server runs restore_wal with (default: this one)."
        )
        add_quiet_option(restore)
        table = actions.add_parser(
            "restore-table",
            help="Bring back one table's rows as of --target-time (replayed in a scratch server), in place or --into "
            "a new table. Needs --confirm.",
        )
        table.add_argument("table", help="The table (public schema), e.g. core_concept.")
        table.add_argument("--target-time", required=True, help='The moment, with timezone: "2026-01-27 12:00:00+00".')
        table.add_argument("--into", default="", help="Write the rows into this new table instead of replacing.")
        table.add_argument("--confirm", action="store_true", help="Yes, write those rows into the live database.")
        add_database_option(table, what="The live database to write into")
        mark = actions.add_parser(
            "mark", help="Create a named restore point on the server (pitr restore --target-name)."
        )
        mark.add_argument("name", help="The restore point's name: up to 63 letters, digits, '.', '_' or '-'.")
        add_database_option(mark, what="The server to mark")
        add_storage_option(mark, what="Where to record it (beside the WAL)")
        drill = actions.add_parser(
            "drill", help="Replay the newest base backup and WAL to --minutes ago in a scratch server; record RTO/RPO."
        )
        drill.add_argument("--minutes", type=int, default=60, help="How long ago the target is (default 60).")
        status = actions.add_parser(
            "status",
            help="List base backups (newest first) and WAL gaps of each cluster, at most --limit of each; --json: "
            '{"total": N, "limit": N, "clusters": [... with base_backups_total and gaps_total]}.',
        )
        add_storage_option(status, what="Which archive to read")
        add_limit_option(status, what="clusters, and at most N base backups and N WAL gaps of each")
        add_json_option(status, what="the status")
        check = actions.add_parser(
            "check", help="Switch WAL on the server and wait until that file is archived (like pgBackRest's check)."
        )
        add_storage_option(check, what="Where to look")
        check.add_argument(
            "--timeout", type=float, default=60.0, help="Seconds to wait for the file to be archived (default 60)."
        )
        add_json_option(check)
        for sub in (setup, base, restore, status, check):
            add_database_option(sub)

    def handle(self, *args, **options):
        handler = {
            "setup": self._setup,
            "base-backup": self._base_backup,
            "restore": self._restore,
            "status": self._status,
            "check": self._check,
            "mark": self._mark,
            "drill": self._drill,
            "restore-table": self._restore_table,
        }[options["action"]]
        handler(options)

    def _setup(self, options):
        report = pitr_settings_check(using=options["database"], python=options["python"], spool=options["spool"])
        if options["json"]:
            write_json(
                self.stdout,
                {
                    "ok": report.ok,
                    "checks": [asdict(c) for c in report.checks],
                    "archive_command": report.archive_command,
                    "archiver": report.archiver,
                },
            )
        else:
            for check in report.checks:
                mark = "ok" if check.ok else ("warn" if check.warning else "FAIL")
                style = self.style.SUCCESS if check.ok else (self.style.WARNING if check.warning else self.style.ERROR)
                self.stdout.write(style(f"[{mark:>4}] {check.name} = {check.actual!r}  (want {check.expected})"))
                if not check.ok:
                    self.stdout.write(f"       fix: {check.fix}")
            self.stdout.write(f"archive_command to use: {report.archive_command}")
            archiver = report.archiver
            self.stdout.write(
                f"archiver: {archiver['archived_count']} archived (last {archiver['last_archived_wal'] or '-'}), "
                f"{archiver['failed_count']} failed (last {archiver['last_failed_wal'] or '-'})"
            )
        if not report.ok:
            raise CommandError(f"The server is not ready for PITR: {len(report.problems)} setting(s) to fix (above).")

    def _base_backup(self, options):
        with TtyProgress(self.stdout, quiet=options["quiet"] or options["json"]) as progress:
            record = pitr_base_backup_create(using=options["database"], storage=options["storage"], progress=progress)
        payload = {
            "id": record.pk,
            "storage_name": record.storage_name,
            "size_bytes": record.size_bytes,
            "sha256": record.sha256,
            "cluster_id": record.pitr.cluster_id,
            "start_wal": record.pitr.start_wal,
            "finished_at": record.finished_at,
        }
        self._write_result(
            options,
            payload,
            f"Base backup #{record.pk}: {record.size_bytes:,} bytes in {record.duration_seconds:.1f}s, "
            f"cluster {record.pitr.cluster_id}, WAL from {record.pitr.start_wal}, {record.storage_name}",
        )

    def _write_result(self, options, payload: dict, summary: str) -> None:
        """With --json the payload, else the one line that says it worked."""
        if options["json"]:
            write_json(self.stdout, payload)
        else:
            self.stdout.write(self.style.SUCCESS(summary))

    def _status(self, options):
        limit = options["limit"]
        clusters = page_of(pitr_status(storage=options["storage"]), limit=limit)
        if options["json"]:
            write_json(self.stdout, page_json(clusters, "clusters", [_status_json(s, limit) for s in clusters.items]))
            return
        if not clusters.total:
            self.stdout.write("No base backups and no archived WAL yet.")
        for status in clusters.items:
            self._write_cluster(status, limit=limit)
        write_more(self.stdout, clusters, "clusters")

    def _write_cluster(self, status: PitrClusterStatus, *, limit: int) -> None:
        last = status.last_archived_at.isoformat() if status.last_archived_at else "-"
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"cluster {status.cluster_id}: {status.wal_files} WAL files")
            + f" ({status.first_wal or '-'} .. {status.last_wal or '-'}, last archived {last})"
        )
        gaps, base_backups = page_of(status.gaps, limit=limit), page_of(status.base_backups, limit=limit)
        for gap in gaps.items:
            self.stdout.write(
                self.style.ERROR(
                    f"  WAL GAP: {gap.first_missing} .. {gap.last_missing} missing ({gap.segments} segment(s)): "
                    f"no restore replays past {gap.after or 'the backup start'}"
                )
            )
        write_more(self.stdout, gaps, "WAL gaps", indent="  ")
        for base in base_backups.items:
            size = f"{base['size_bytes']:,} bytes" if base["size_bytes"] is not None else "size unknown"
            self.stdout.write(
                f"  base backup #{base['id']}  {base['finished_at']:%Y-%m-%d %H:%M:%S%z}  "
                f"from {base['start_wal']}  {size}  {base['storage']}:{base['storage_name']}  "
                f"verification {base['verification_status']}"
            )
            if base.get("wal_first_missing"):
                self.stdout.write(
                    self.style.ERROR(
                        f"    restorable only up to {base['wal_until'] or 'nothing'}: "
                        f"{base['wal_first_missing']} is missing"
                    )
                )
            elif "wal_until" in base:
                self.stdout.write(f"    WAL complete up to {base['wal_until'] or '-'}")
        write_more(self.stdout, base_backups, "older base backups", indent="  ")
        if not status.base_backups:
            self.stdout.write("  no base backup: this WAL cannot be used for a restore")

    def _check(self, options):
        result = pitr_check(using=options["database"], storage=options["storage"], timeout=options["timeout"])
        self._write_result(
            options,
            asdict(result),
            f"WAL archiving works: {result.segment} of cluster {result.cluster_id} reached {result.storage} "
            f"storage {result.waited_seconds:.1f}s after the switch.",
        )

    def _restore(self, options):
        target_time = _parse_target_time(options["target_time"]) if options["target_time"] else None
        target = restore_target_resolve(
            target_time=target_time, **options_named(options, "target_lsn", "target_xid", "target_name")
        )
        with TtyProgress(self.stdout, quiet=options["quiet"]) as progress:
            named = options_named(
                options, "target_dir", "backup_id", "port", "owner", "keep_archiving", "python", "delta", "confirm"
            )
            result = pitr_restore(**named, target=target, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"Data directory {result.target_dir} rebuilt from base backup #{result.base_backup.pk}; it recovers "
                f"to {result.target.text} when started."
            )
        )
        self.stdout.write(f"Start it as the database OS user, with the dbops environment: {result.start_command}")

    def _drill(self, options):
        if options["minutes"] < 1:
            raise CommandError("--minutes: the target must lie at least a minute back.")
        drill = pitr_drill_run(target_age=timedelta(minutes=options["minutes"]))
        if drill is None:
            self.stdout.write("No PITR base backup: nothing to drill (take one with `pitr base-backup`).")
            return
        rpo = f"{drill.rpo_seconds:.1f}s" if drill.rpo_seconds is not None else "unknown (no commit replayed)"
        self.stdout.write(
            self.style.SUCCESS(
                f"PITR drill #{drill.pk}: base backup #{drill.base_backup_id} replayed to "
                f"{drill.target_time.isoformat()} in {drill.recovery_seconds:.1f}s (RTO); last commit {rpo} before "
                "the target (RPO)."
            )
        )

    def _restore_table(self, options):
        result = pitr_table_restore(
            target_time=_parse_target_time(options["target_time"]),
            **options_named(options, "table", "into", "confirm", "database"),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Table {result.into} now holds the {result.rows:,} rows {result.table} had at "
                f"{result.target_time.isoformat()} (base backup #{result.base_backup_id}, WAL replayed to "
                f"{result.replayed_to_lsn}; restore record #{result.restore_record_id})."
            )
        )
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))

    def _mark(self, options):
        point = pitr_mark(name=options["name"], using=options["database"], storage=options["storage"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Restore point {point.name!r} of cluster {point.cluster_id} at {point.lsn} "
                f"({point.created_at.isoformat()}); `pitr restore --target-name {point.name}` recovers to it."
            )
        )


def _status_json(status: PitrClusterStatus, limit: int) -> dict:
    """A cluster's status with its base backups and gaps cut at `limit`, and how many there are of each."""
    return cut_lists(asdict(status), ("base_backups", "gaps"), limit=limit)


def _parse_target_time(raw: str) -> datetime:
    text = raw.strip()
    if len(text) > 3 and text[-3] in "+-" and text[-2:].isdigit() and ":" not in text[-3:]:
        text += ":00"  # PostgreSQL style "+00" offsets
    try:
        parsed = parse_datetime(text)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f'--target-time {raw!r} is not a date and time like "2026-01-27 12:00:00+00".')
    return parsed
