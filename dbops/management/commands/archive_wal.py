"""archive_wal: PostgreSQL's archive_command (`archive_wal %p %f`)."""

from __future__ import annotations

from dbops.management.wal import WalFileCommand
from dbops.services.pitr.wal_archive import wal_archive


class Command(WalFileCommand):
    help = (
        "Stores one WAL file, zstd-compressed and SHA-256 checksummed, in the PITR storage (local BACKUP_DIR or "
        "S3). Meant as the server's archive_command: archive_wal %p %f. Archiving identical bytes again succeeds; "
        "different bytes under an archived name fail and change nothing."
    )
    verb, storage_help = "archive", "Where to store"
    file_arguments = (
        ("path", "Path of the WAL file (%%p: relative to the data directory)."),
        ("name", "WAL file name (%%f), e.g. 000000010000000000000003."),
    )

    def transfer(self, options: dict, *, cluster_id: str) -> str:
        result = wal_archive(
            path=options["path"], name=options["name"], cluster_id=cluster_id, storage=options["storage"]
        )
        state = "already archived (identical)" if result.already_archived else "archived"
        return (
            f"{result.name} {state}: {result.size_bytes:,} -> {result.stored_bytes:,} bytes, "
            f"sha256 {result.sha256[:16]}…, {result.storage_name}"
        )
