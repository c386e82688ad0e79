"""docker-compose.yml stays wired to the configuration registry (no docker needed to check it)."""

import yaml

from multipult.config import ENV_VARS_BY_NAME, resolve_all
from tests.paths import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_services():
    assert {"postgres", "redis", "minio", "web", "worker", "beat"} <= set(_compose()["services"])


def test_app_services_only_set_declared_variables_and_they_parse():
    compose = _compose()
    for name in ("web", "worker", "beat"):
        environment = compose["services"][name]["environment"]
        unknown = set(environment) - set(ENV_VARS_BY_NAME)
        assert not unknown, f"{name} sets variables the project does not read: {unknown}"
        # Compose substitutions (${VAR:?...}) stand in for secrets from .env; give them a value to parse.
        concrete = {key: ("x" if str(value).startswith("${") else str(value)) for key, value in environment.items()}
        _values, problems = resolve_all(concrete)
        assert problems == [], problems
        assert concrete["DB_HOST"] and concrete["REDIS_HOST"] and concrete["S3_BACKUP_BUCKET"]


def test_no_secret_is_written_into_the_compose_file():
    compose = _compose()
    for name in ("web", "worker", "beat"):
        environment = compose["services"][name]["environment"]
        for key, value in environment.items():
            if ENV_VARS_BY_NAME[key].secret:
                assert str(value).startswith("${"), f"{key} must come from .env, not the compose file"
