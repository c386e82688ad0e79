"""Plain backup files and their `<file>.sha256` sidecar: `restore_db --input` checks it before touching
anything, refuses a mismatch or a truncated file, and without a sidecar refuses unless --no-verify."""

from __future__ import annotations

import subprocess
from io import StringIO

import pytest

from dbops.models import BackupRecord
from multipult.core.models import Concept
from tests.commands import command_error, run_command
from tests.dbops.services.backups.conftest import tree

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]


def state(*folders) -> tuple:
    return Concept.objects.count(), BackupRecord.objects.count(), [tree(folder) for folder in folders]


@pytest.fixture
def backup_file(tmp_path, backup_dir, some_data):
    """A backup_db file (with its sidecar), and the data changed after it."""
    output = tmp_path / "out" / "backup.sql.zst"
    output.parent.mkdir()
    run_command("backup_db", "--output", str(output))
    Concept.objects.filter(code__in=["C1", "C2", "C3"]).delete()
    return output


def test_a_matching_sidecar_is_checked_and_named(backup_file, backup_dir):
    output = run_command("restore_db", "--input", str(backup_file), "--confirm", "--no-safety-backup")
    assert f"Checksum verified against {backup_file}.sha256" in output
    assert Concept.objects.count() == 30


def test_a_sidecar_written_by_sha256sum_itself_is_accepted(backup_file, backup_dir):
    # `sha256sum -b` writes the binary-mode marker (`*name`); the format is the tool's, not ours.
    sidecar = backup_file.with_name(backup_file.name + ".sha256")
    listing = subprocess.run(["sha256sum", "-b", backup_file.name], cwd=backup_file.parent, capture_output=True)
    sidecar.write_bytes(listing.stdout)
    assert b" *backup.sql.zst" in listing.stdout
    run_command("restore_db", "--input", str(backup_file), "--confirm", "--no-safety-backup")
    assert Concept.objects.count() == 30


def test_a_file_that_differs_from_its_sidecar_is_refused(backup_file, backup_dir):
    data = bytearray(backup_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    backup_file.write_bytes(bytes(data))
    before = state(backup_dir, backup_file.parent)
    message = command_error("restore_db", "--input", str(backup_file), "--confirm")
    assert message.startswith(f"{backup_file} is damaged or truncated: its SHA-256 is ")
    assert "backup.sql.zst.sha256 says" in message and message.endswith("Nothing was restored.")
    assert state(backup_dir, backup_file.parent) == before  # no safety backup, nothing restored
    # --no-verify skips the sidecar, but the damage is still caught while decoding (zstd's frame checksum).
    command_error("restore_db", "--input", str(backup_file), "--confirm", "--no-verify", match="damaged or truncated")
    assert state(backup_dir, backup_file.parent) == before


def test_a_truncated_file_is_refused_with_or_without_its_sidecar(backup_file, backup_dir):
    data = backup_file.read_bytes()
    backup_file.write_bytes(data[: len(data) - 200])
    before = state(backup_dir, backup_file.parent)
    assert "is damaged or truncated" in command_error("restore_db", "--input", str(backup_file), "--confirm")
    backup_file.with_name(backup_file.name + ".sha256").unlink()
    assert "truncated" in command_error("restore_db", "--input", str(backup_file), "--confirm", "--no-verify")
    assert state(backup_dir, backup_file.parent)[:2] == before[:2]


def test_without_a_sidecar_it_says_so_and_needs_no_verify(backup_file, backup_dir):
    backup_file.with_name(backup_file.name + ".sha256").unlink()
    before = state(backup_dir, backup_file.parent)
    message = command_error("restore_db", "--input", str(backup_file), "--confirm")
    assert message == (
        f"{backup_file} has no checksum file beside it (backup.sql.zst.sha256), so it cannot be verified. "
        "Nothing was restored. Pass --no-verify to restore it anyway."
    )
    assert state(backup_dir, backup_file.parent) == before
    # The plan (no --confirm) says what a restore would do about the checksum.
    command_error(
        "restore_db", "--input", str(backup_file), "--no-verify", match="NOT verify its checksum", one_line=False
    )

    errors = StringIO()
    run_command("restore_db", "--input", str(backup_file), "--confirm", "--no-verify", stderr=errors)
    assert "was not verified against a checksum" in errors.getvalue()
    assert Concept.objects.count() == 30
