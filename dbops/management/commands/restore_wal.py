"""restore_wal: PostgreSQL's restore_command (`restore_wal %f %p --cluster-id ID`)."""

from __future__ import annotations

from dbops.management.wal import WalFileCommand
from dbops.services.pitr.wal_archive import wal_restore


class Command(WalFileCommand):
    help = (
        "Writes one archived WAL file to PATH after checking its SHA-256. Meant as the restore_command that "
        "`pitr restore` configures; exits non-zero when the file is not archived (normal at the end of recovery)."
    )
    verb, storage_help = "restore", "Where to read"
    file_arguments = (("name", "WAL file name (%%f)."), ("path", "Where to write it (%%p)."))

    def transfer(self, options: dict, *, cluster_id: str) -> str:
        size = wal_restore(
            name=options["name"], destination=options["path"], cluster_id=cluster_id, storage=options["storage"]
        )
        return f"{options['name']} restored ({size:,} bytes, checksum verified)."
