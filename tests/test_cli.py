"""cli.py, the hyphenated front: run as a real process, compared with manage.py."""

from __future__ import annotations

import pytest

from tests.dbops.commandline import run_manage, run_script, sqlite_environment


def run_cli(*args: str, env: dict[str, str | None] | None = None):
    return run_script("cli.py", *args, env=env)


@pytest.fixture
def sqlite_env(tmp_path):
    return sqlite_environment(tmp_path)


def test_help_lists_every_management_command_hyphenated():
    from django.core.management import get_commands

    result = run_cli("--help")
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert listed == {name.replace("_", "-") for name in get_commands()}
    for name in ("create-user", "assign-role", "seed-data", "health-check", "stats", "validate-config", "backup-db"):
        assert name in listed
    assert result.stdout.index("[dbops]") < result.stdout.index("[django.core]")


def test_a_command_runs_exactly_as_through_manage_py(sqlite_env):
    via_cli = run_cli("seed-data", "--dry-run", "--scale", "2", "--seed", "3", env=sqlite_env)
    via_manage = run_manage("seed_data", "--dry-run", "--scale", "2", "--seed", "3", env=sqlite_env)
    assert via_cli.returncode == via_manage.returncode == 0
    assert via_cli.stdout == via_manage.stdout


def test_flags_may_use_underscores_and_the_command_name_may_too(sqlite_env):
    hyphens = run_cli("seed-data", "--dry-run", "--scale=0.5", env=sqlite_env)
    underscores = run_cli("seed_data", "--dry_run", "--scale=0.5", env=sqlite_env)
    assert hyphens.returncode == underscores.returncode == 0
    assert hyphens.stdout == underscores.stdout and "Would create" in hyphens.stdout


def test_command_help_names_the_hyphenated_command():
    result = run_cli("create-user", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: cli.py create-user")
    assert "--password-from-env VAR" in result.stdout


def test_unknown_command_suggests_the_close_ones():
    result = run_cli("seed-dat")
    assert result.returncode == 2
    assert "Unknown command 'seed-dat'. Did you mean: seed-data?" in result.stderr


def test_errors_and_exit_status_come_from_the_command(sqlite_env):
    result = run_cli("seed-data", "--scale", "0", env=sqlite_env)
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: --scale: The scale must be a positive number, got 0.0."


def test_config_commands_still_run_when_settings_cannot_load(tmp_path):
    result = run_cli("validate-config", env={"DB_PORT": "x", "BACKUP_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "DB_PORT: 'x' is not a valid int" in result.stdout
    other = run_cli("stats", env={"DB_PORT": "x"})
    assert other.returncode == 2 and other.stderr.startswith("Configuration error:")


@pytest.mark.slow
def test_seed_docs_examples_on_sqlite(sqlite_env, tmp_path):
    """The examples of the issue: create-user, assign-role and backup-db --output."""
    assert run_cli("migrate", "--no-input", "-v", "0", env=sqlite_env).returncode == 0
    env = {**sqlite_env, "ADMIN_PASSWORD": "Correct-Horse-Battery-9"}
    created = run_cli(
        "create-user", "--username", "admin", "--email", "a@b.co", "--password-from-env", "ADMIN_PASSWORD", env=env
    )
    assert created.returncode == 0, created.stderr
    assert "Created user #1 admin" in created.stdout

    unknown_role = run_cli("assign-role", "--user-id", "1", "--role", "editor", env=env)
    assert unknown_role.returncode == 1 and "no role named 'editor'" in unknown_role.stderr

    output = tmp_path / "backup.sql"
    backup = run_cli("backup-db", "--output", str(output), env=env)
    assert backup.returncode == 0, backup.stderr
    assert "admin" in output.read_text()  # the user created above is in the dump
