"""The commands as an operator runs them: a real `manage.py` process, exit codes 0/1/2, one readable
line on stderr for bad input (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args, backup_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DB_NAME": connection.settings_dict["NAME"], "BACKUP_DIR": str(backup_dir)}
    env.pop("S3_BACKUP_BUCKET", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args, "--skip-checks"], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_exit_codes_and_messages(tmp_path):
    ok = manage("list_backups", "--json", backup_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr

    unknown = manage("restore_db", "--backup-id", "31337", "--confirm", backup_dir=tmp_path)
    assert unknown.returncode == 1
    assert "No backup with id '31337'" in unknown.stderr and "Traceback" not in unknown.stderr

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("just some notes")
    refused = manage("restore_db", "--input", str(not_a_backup), "--confirm", backup_dir=tmp_path)
    assert refused.returncode == 1 and "is not a backup" in refused.stderr and "Traceback" not in refused.stderr

    usage = manage("restore_db", "--backup-id", "1", "--input", "x", backup_dir=tmp_path)
    assert usage.returncode == 2 and "not allowed with argument" in usage.stderr
