"""pin_backup: pin a backup so that retention (or anyone) never deletes it, or unpin it."""

from __future__ import annotations

from dbops.management.base import DATABASE_CHECKS_ONLY, DbopsCommand
from dbops.services.backups.pinning import backup_pin
from dbops.services.backups.restore import backup_for_id


class Command(DbopsCommand):
    help = "Pins a backup: retention keeps it and nothing deletes it until it is unpinned (--unpin)."
    requires_system_checks = DATABASE_CHECKS_ONLY

    def add_arguments(self, parser):
        parser.add_argument("backup_id", help="Id of the backup (see list_backups).")
        parser.add_argument("--unpin", action="store_true", help="Unpin it instead: retention decides again.")

    def handle(self, *args, **options):
        backup_record = backup_pin(backup_record=backup_for_id(options["backup_id"]), pinned=not options["unpin"])
        state = "pinned: retention keeps it until it is unpinned" if backup_record.pinned else "unpinned"
        self.stdout.write(self.style.SUCCESS(f"Backup #{backup_record.pk} {state}."))
