"""validate_config / show_config: the registry, real reachability probes and secret masking."""

from __future__ import annotations

import json
import os
from io import StringIO

import pytest

from multipult.config import ENV_VARS
from multipult.core.services.configuration import config_show, config_validate
from tests.commands import command_error, run_command
from tests.dbops.commandline import run_manage
from tests.ports import unused_port


@pytest.fixture
def good_env(tmp_path):
    """The real servers' environment (from `scripts/services env`) with a private BACKUP_DIR."""
    return {**os.environ, "BACKUP_DIR": str(tmp_path / "backups")}


def test_the_real_servers_configuration_has_no_problems(good_env):
    assert config_validate(environ=good_env, deep=True) == []


def test_every_problem_is_listed_at_once(good_env, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    environ = {
        **good_env,
        "SLOW_QUERY_THRESHOLD_MS": "abc",
        "DB_PORT": str(unused_port()),
        "REDIS_PORT": str(unused_port()),
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{unused_port()}",
        "AWS_SECRET_ACCESS_KEY": "",
        "BACKUP_DIR": str(a_file / "sub"),
        "LOG_FORMAT": "xml",
    }
    problems = {problem.name: problem.message for problem in config_validate(environ=environ, deep=True)}

    assert "not a valid float" in problems["SLOW_QUERY_THRESHOLD_MS"]
    assert "must be json, text or auto" in problems["LOG_FORMAT"]
    assert "set both or neither" in problems["AWS_SECRET_ACCESS_KEY"]
    assert "is not a folder" in problems["BACKUP_DIR"]
    assert "cannot connect to PostgreSQL" in problems["database"]
    assert "cannot reach Redis" in problems["redis"]
    assert "cannot reach bucket" in problems["s3"]


def test_redis_and_s3_are_only_probed_with_deep(good_env):
    environ = {**good_env, "REDIS_PORT": str(unused_port()), "S3_ENDPOINT_URL": f"http://127.0.0.1:{unused_port()}"}
    assert config_validate(environ=environ) == []
    assert {problem.name for problem in config_validate(environ=environ, deep=True)} == {"redis", "s3"}


def test_s3_half_configured_and_ranges(good_env):
    environ = {**good_env, "S3_BACKUP_BUCKET": "", "DB_PORT": "70000", "BACKUP_MAX_AGE_HOURS": "0"}
    names = {problem.name for problem in config_validate(environ=environ)}
    assert {"S3_BACKUP_BUCKET", "DB_PORT", "BACKUP_MAX_AGE_HOURS"} <= names


def test_wrong_password_is_reported_without_the_password(good_env):
    environ = {**good_env, "DB_PASSWORD": "wrong-password-123"}
    problems = config_validate(environ=environ)
    assert [problem.name for problem in problems] == ["database"]
    assert "wrong-password-123" not in problems[0].message


def test_unusable_sqlite_file_is_reported(good_env, tmp_path):
    not_a_database = tmp_path / "x.sqlite3"
    not_a_database.write_text("this is not sqlite" * 100)
    environ = {key: value for key, value in good_env.items() if key != "DB_HOST"}
    problems = config_validate(environ={**environ, "SQLITE_PATH": str(not_a_database)})
    assert [problem.name for problem in problems] == ["SQLITE_PATH"]


def test_show_config_masks_secrets_and_names_sources():
    environ = {"DB_PASSWORD": "pw-very-secret", "DB_PORT": "6543", "AWS_SECRET_ACCESS_KEY": "aws-very-secret"}
    entries = {entry.name: entry for entry in config_show(environ=environ)}

    assert set(entries) == {var.name for var in ENV_VARS}
    assert entries["DB_PORT"].value == 6543 and entries["DB_PORT"].source == "env"
    assert entries["REDIS_PORT"].source == "default"
    assert entries["DB_PASSWORD"].value == "********" and entries["DB_PASSWORD"].secret
    assert "very-secret" not in repr(entries)


def test_show_config_command_json_has_no_secret(monkeypatch):
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", "enc-key-do-not-print")
    shown = run_command("show_config", "--json")
    data = json.loads(shown)
    by_name = {entry["name"]: entry for entry in data}
    assert by_name["BACKUP_ENCRYPTION_KEY"] == {
        **by_name["BACKUP_ENCRYPTION_KEY"],
        "value": "********",
        "source": "env",
    }
    assert "enc-key-do-not-print" not in shown

    text = run_command("show_config")
    assert "BACKUP_ENCRYPTION_KEY" in text and "enc-key-do-not-print" not in text


def test_validate_config_command_raises_with_the_count(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path))
    run_command("validate_config")
    monkeypatch.setenv("REDIS_PORT", str(unused_port()))
    out = StringIO()
    command_error("validate_config", "--deep", stdout=out, match="1 configuration problem")
    assert "cannot reach Redis" in out.getvalue()


def test_validate_config_runs_even_when_settings_cannot_load(tmp_path):
    # A bad type stops every other command at settings import; validate_config still lists everything.
    result = run_manage(
        "validate_config", "--json",
        env={"SLOW_QUERY_THRESHOLD_MS": "abc", "DB_PORT": str(unused_port()), "BACKUP_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert {problem["name"] for problem in problems} == {"SLOW_QUERY_THRESHOLD_MS", "database"}

    other = run_manage("check", env={"SLOW_QUERY_THRESHOLD_MS": "abc"})
    assert other.returncode == 2 and "SLOW_QUERY_THRESHOLD_MS" in other.stderr


def test_show_config_runs_even_when_settings_cannot_load():
    result = run_manage("show_config", env={"DB_PORT": "not-a-port", "DB_PASSWORD": "pw-in-env-123"})
    assert result.returncode == 0
    assert "DB_PORT" in result.stdout and "pw-in-env-123" not in result.stdout + result.stderr


def test_show_config_prints_each_group_once_with_all_its_variables():
    text = run_command("show_config")

    headings = [line for line in text.splitlines() if line.startswith("[")]
    assert len(headings) == len(set(headings)) == len({variable.group for variable in ENV_VARS})
    # PITR_STORAGE is declared after the datamigration group, and is still listed under [backups]
    backups = text.split("[backups]")[1].split("\n[")[0]
    assert "PITR_STORAGE" in backups and "BACKUP_DIR" in backups
    assert all(f"  {variable.name} " in text for variable in ENV_VARS)
