"""The PostgreSQL programs, on the real machine: found where PATH does not reach, a missing one named
with its package, their failures on one line, and a child environment that carries the password as
PGPASSWORD and none of our secrets (read from /proc of the real, running pg_dump)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.db import connection

from dbops.engines import get_connector
from dbops.engines.postgresql import tools
from dbops.exceptions import BackupError, RestoreError

SECRETS = {
    "DB_PASSWORD": "db-password-sentinel",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-sentinel",
    "AWS_ACCESS_KEY_ID": "aws-key-id-sentinel",
    "BACKUP_ENCRYPTION_KEY": "backup-key-sentinel",
    "BACKUP_ENCRYPTION_KEY_OLD": "old-backup-key-sentinel",
    "DJANGO_SECRET_KEY": "django-secret-sentinel",
    "EMAIL_HOST_PASSWORD": "mail-password-sentinel",
}


def version_of(program: str) -> str:
    return subprocess.run([program, "--version"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", ["pg_basebackup", "pg_verifybackup"])
def test_a_program_off_path_is_found_in_the_server_folder(name, monkeypatch, tmp_path):
    # given a PATH that holds no PostgreSQL program (nor pg_config)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which(name) is None and shutil.which("pg_config") is None
    # when the engine looks for it, it is found, and it is the real program
    found = tools.tool_path(name)
    assert found is not None and Path(found).parent.match("postgresql/*/bin")
    assert "(PostgreSQL)" in version_of(found)


def test_pg_verifybackup_is_not_on_this_machines_path_and_is_still_found():
    if shutil.which("pg_verifybackup") is not None:
        pytest.skip("pg_verifybackup is on PATH here; the restricted-PATH test covers the search")
    assert "(PostgreSQL)" in version_of(tools.tool_require("pg_verifybackup"))


def test_pg_config_bindir_is_asked_when_path_has_only_pg_config(monkeypatch, tmp_path):
    real_pg_config = next(Path(folder) / "pg_config" for folder in tools._server_bin_dirs(tools.SERVER_BIN_GLOB))
    (tmp_path / "pg_config").symlink_to(real_pg_config)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools, "SERVER_BIN_GLOB", str(tmp_path / "nowhere" / "*" / "bin"))  # no Debian folder
    found = tools.tool_path("pg_verifybackup")
    expected_folder = subprocess.run([real_pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
    assert found == str(Path(expected_folder) / "pg_verifybackup")


def test_the_newest_server_folder_wins(tmp_path, monkeypatch):
    for major in ("9.6", "15", "16", "100"):
        folder = tmp_path / "postgresql" / major / "bin"
        folder.mkdir(parents=True)
        program = folder / "pg_fake_tool"
        program.write_text("#!/bin/sh\necho " + major + "\n")
        program.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(tools, "SERVER_BIN_GLOB", str(tmp_path / "postgresql" / "*" / "bin"))
    assert tools.tool_path("pg_fake_tool") == str(tmp_path / "postgresql" / "100" / "bin" / "pg_fake_tool")


def test_a_program_that_exists_nowhere_is_one_readable_error():
    with pytest.raises(tools.ToolNotFound) as missing:
        tools.tool_require("pg_no_such_program")
    message = str(missing.value)
    assert "\n" not in message
    assert message.startswith("pg_no_such_program not found on PATH, in `pg_config --bindir` or in ")
    assert "postgresql-client" in message
    with pytest.raises(BackupError, match=r"^pg_ctl2 not found"):
        tools.tool_require("pg_ctl2", error=BackupError)
    assert "(Debian/Ubuntu: postgresql-<major>" in tools.tool_missing_message("pg_ctl")


def test_a_failing_program_is_one_line_with_its_own_words(tmp_path, db):
    not_an_archive = tmp_path / "junk.dump"
    not_an_archive.write_bytes(b"this is not a custom-format archive\n" * 10)
    with pytest.raises(RestoreError) as failed:
        get_connector().archive_tables(not_an_archive, fmt="custom")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("pg_restore failed (exit 1): ")
    assert "input file does not appear to be a valid archive" in message


def test_tool_failure_joins_lines_and_drops_the_program_prefix():
    stderr = "pg_dump: error: query failed: ERROR:  canceling statement\npg_dump: detail: Query was: LOCK TABLE x\n"
    assert tools.tool_failure("/usr/bin/pg_dump", 1, stderr) == (
        "pg_dump failed (exit 1): error: query failed: ERROR: canceling statement; detail: Query was: LOCK TABLE x"
    )
    assert tools.tool_failure("pg_dump", -9, "") == "pg_dump failed (killed by signal 9): (no error output)"


def test_child_environment_keeps_only_what_a_program_needs():
    base = {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC", "TMPDIR": "/tmp"}
    base |= SECRETS | {"PGPASSWORD": "inherited-password", "PGSSLROOTCERT": "/etc/ca.pem", "PYTHONPATH": "/x"}
    settings_dict = {"PASSWORD": "from-settings", "OPTIONS": {"sslmode": "verify-full", "connect_timeout": 3}}
    env = tools.child_environment(settings_dict, application_name="dbops pg_dump", base=base)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "PGSSLROOTCERT": "/etc/ca.pem",
        "PGPASSWORD": "from-settings",
        "PGSSLMODE": "verify-full",
        "PGCONNECT_TIMEOUT": "3",
        "PGAPPNAME": "dbops pg_dump",
    }
    assert "PGPASSWORD" not in tools.child_environment({"PASSWORD": ""}, base=base)


class _EnvironOfRunningDump:
    """A dump sink that, on the first chunk, reads the environment of the pg_dump streaming into it."""

    def __init__(self) -> None:
        self.environ: dict[str, str] | None = None
        self.pid: int | None = None

    def write(self, data: bytes) -> int:
        if self.environ is None:
            self.pid = _running_child_dump()
            raw = Path(f"/proc/{self.pid}/environ").read_bytes()
            self.environ = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
        return len(data)


def _running_child_dump() -> int:
    """Our child pg_dump that is dumping (not the `pg_dump --version` started beside it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and any(b"--snapshot=" in arg for arg in argv):
            return int(entry.name)
    raise AssertionError("no running pg_dump child found")


@pytest.mark.django_db(transaction=True)
def test_the_running_dump_carries_pgpassword_and_none_of_our_secrets(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with connection.cursor() as cursor:
        # More than the 1 MiB pipe: pg_dump is still writing (alive) when the first chunk arrives.
        cursor.execute(
            "CREATE TABLE engine_env_probe AS SELECT md5(i::text) || md5((i * 7)::text) AS v "
            "FROM generate_series(1, 80000) AS i"
        )
    try:
        sink = _EnvironOfRunningDump()
        get_connector().dump(sink, fmt="custom")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE engine_env_probe")
    environ = sink.environ
    assert environ, f"the environment of pg_dump {sink.pid} could not be read"
    assert environ["PGPASSWORD"] == connection.settings_dict["PASSWORD"]
    assert not set(SECRETS) & set(environ)
    assert not [key for key in environ if key.startswith("AWS_")]
    assert not [value for value in environ.values() if "sentinel" in value]
    # Only the basics and the PG* variables the engine sets (Debian's pg_wrapper may add PG* ones too).
    extra = {key for key in environ if not key.startswith(("PG", "LC_")) and key not in tools.INHERITED}
    assert extra == set(), extra
