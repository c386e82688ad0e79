import json
import os
import subprocess
import sys

import pytest

from multipult.config import ENV_VARS, ConfigError, load_config, resolve_all
from tests.paths import ROOT


def test_defaults_need_no_environment():
    config = load_config({})
    assert config["DB_HOST"] is None
    assert config["SQLITE_PATH"] == "var/multipult.sqlite3"
    assert config["BACKUP_DIR"] == "backups"
    assert config["REDIS_HOST"] is None
    assert config["SLOW_QUERY_THRESHOLD_MS"] == 100.0


def test_values_are_typed_and_record_their_source():
    values, problems = resolve_all({"DB_PORT": "6543", "QUERY_PROFILING_ENABLED": "yes", "DB_HOST": "db"})
    assert problems == []
    assert values["DB_PORT"].value == 6543 and values["DB_PORT"].source == "env"
    assert values["QUERY_PROFILING_ENABLED"].value is True
    assert values["REDIS_PORT"].source == "default"


@pytest.mark.parametrize(
    ("name", "raw"),
    [("SLOW_QUERY_THRESHOLD_MS", "abc"), ("DB_PORT", "70000"), ("DEBUG", "maybe"), ("REDIS_PORT", "-1")],
)
def test_bad_value_names_the_variable(name, raw):
    with pytest.raises(ConfigError, match=name):
        load_config({name: raw})


def test_every_problem_is_reported_at_once():
    _, problems = resolve_all({"DB_PORT": "x", "SLOW_QUERY_THRESHOLD_MS": "abc"})
    assert len(problems) == 2


def test_secrets_are_masked_in_display():
    values, _ = resolve_all({"DB_PASSWORD": "hunter2-very-secret", "AWS_SECRET_ACCESS_KEY": "AKIA-secret"})
    for name in ("DB_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
        assert values[name].display == "********"
    assert {var.name for var in ENV_VARS if var.secret} >= {
        "DB_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "BACKUP_ENCRYPTION_KEY",
        "DJANGO_SECRET_KEY",
    }


def test_manage_py_fails_with_one_readable_line_on_bad_env():
    env = {**os.environ, "SLOW_QUERY_THRESHOLD_MS": "abc"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "SLOW_QUERY_THRESHOLD_MS" in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_masking_filter_hides_configured_secret(monkeypatch):
    import logging

    from multipult.logging import SecretMaskingFilter

    monkeypatch.setenv("DB_PASSWORD", "s3cr3t-value")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "connecting with %s", ("s3cr3t-value",), None)
    SecretMaskingFilter().filter(record)
    assert "s3cr3t-value" not in record.getMessage()
    assert "********" in record.getMessage()


def test_developers_md_lists_every_variable_as_declared():
    from multipult.config import env_vars_markdown

    text = (ROOT / "DEVELOPERS.md").read_text()
    table = text.split("<!-- env-vars:start -->\n", 1)[1].split("<!-- env-vars:end -->", 1)[0]
    assert table.strip() == env_vars_markdown().strip(), "run make developers-md"


def _databases_in_child(**env: str) -> dict:
    """settings.DATABASES (hosts, ports, names) as a fresh process computes it from `env`."""
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps({a: [d.get('HOST'), d.get('PORT'), str(d['NAME'])] for a, d in settings.DATABASES.items()}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "OPS_"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "multipult.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_operations_database_follows_the_application_server_unless_given_its_own():
    same = _databases_in_child(DB_HOST="db.internal", DB_PORT="5433", DB_NAME="shop")
    assert same == {"default": ["db.internal", 5433, "shop"], "dbops": ["db.internal", 5433, "shop_ops"]}
    apart = _databases_in_child(DB_HOST="db.internal", DB_NAME="shop", OPS_DB_HOST="ops.internal", OPS_DB_PORT="6432")
    assert apart["default"] == ["db.internal", 5432, "shop"]
    assert apart["dbops"] == ["ops.internal", 6432, "shop_ops"]
