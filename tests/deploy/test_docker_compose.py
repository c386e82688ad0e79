"""docker-compose.yml and the Dockerfile: brought up for real where a container runtime exists, and
their wiring checked everywhere (dependencies, one-shot services, healthchecks, variables, the image's
requirements) against the project itself: the configuration registry, the URLs, the installed packages."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from django.urls import resolve

from multipult.config import ENV_VARS_BY_NAME, resolve_all
from tests.paths import ROOT

APP_SERVICES = ("web", "worker", "beat")
ONE_SHOT_SERVICES = ("migrate", "minio-setup")
SUBSTITUTION = re.compile(r"\$\{(\w+)(:?[-?])?([^}]*)\}")


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _services() -> dict:
    return _compose()["services"]


def _dockerfile_stages() -> dict[str, str]:
    """Each `FROM … AS name` stage of the Dockerfile and its text."""
    text = (ROOT / "Dockerfile").read_text()
    parts = re.split(r"^FROM .* AS (\w+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _concrete(environment: dict) -> dict[str, str]:
    """Compose substitutions (${VAR:?...}, ${VAR:-default}) given what .env.example would give them."""
    return {key: SUBSTITUTION.sub(lambda m: m.group(3) or "x", str(value)) for key, value in environment.items()}


def test_compose_has_the_production_services():
    assert {"postgres", "redis", "minio", "minio-setup", "migrate", "web", "worker", "beat"} <= set(_services())


def test_migrations_run_once_before_web_worker_and_beat():
    services = _services()
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert "python manage.py migrate --no-input" in " ".join(migrate["command"])
    assert "python manage.py setup_schedules" in " ".join(migrate["command"])
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert "migrate" not in " ".join(services[name].get("command", [])), f"{name} must not migrate itself"


def test_every_dependency_exists_and_waits_for_what_it_can_see():
    services = _services()
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health, it has none"
            else:
                assert rule["condition"] == "service_completed_successfully"
                assert dependency in ONE_SHOT_SERVICES, f"{dependency} is not a one-shot service"


def test_long_running_services_restart_and_have_healthchecks():
    for name, service in _services().items():
        if name in ONE_SHOT_SERVICES:
            assert service["restart"] == "no", name
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name


def test_web_runs_gunicorn_and_its_healthcheck_asks_the_health_view():
    web = _services()["web"]
    assert web["command"][:3] == ["gunicorn", "--config", "gunicorn.conf.py"]
    probe = " ".join(web["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/[^'\"]*)", probe).group(1)
    assert resolve(path).url_name == "health"
    config = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), config)  # noqa: S102  (our own file)
    assert config["bind"].endswith(":8000")
    module, application = config["wsgi_app"].split(":")
    assert callable(getattr(__import__(module, fromlist=[application]), application))


def test_worker_and_beat_healthchecks_name_what_they_start():
    services = _services()
    assert "celery -A multipult inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    beat_command = services["beat"]["command"]
    pidfile = beat_command[beat_command.index("--pidfile") + 1]
    assert pidfile in " ".join(services["beat"]["healthcheck"]["test"])


def test_minio_is_healthchecked_and_the_bucket_is_created_before_the_app_starts():
    services = _services()
    assert services["minio-setup"]["depends_on"]["minio"] == {"condition": "service_healthy"}
    bucket = services["web"]["environment"]["S3_BACKUP_BUCKET"]
    assert f"mc mb --ignore-existing local/{bucket}" in services["minio-setup"]["entrypoint"]
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["minio-setup"]["condition"] == "service_completed_successfully"


def test_app_services_only_set_declared_variables_and_they_parse():
    services = _services()
    for name in (*APP_SERVICES, "migrate", "postgres"):
        environment = {k: v for k, v in services[name]["environment"].items() if not k.startswith("POSTGRES_")}
        unknown = set(environment) - set(ENV_VARS_BY_NAME)
        assert not unknown, f"{name} sets variables the project does not read: {unknown}"
        concrete = _concrete(environment)
        _values, problems = resolve_all(concrete)
        assert problems == [], problems
        assert concrete["DB_HOST"] and concrete["REDIS_HOST"] and concrete["S3_BACKUP_BUCKET"]


def test_no_secret_is_written_into_the_compose_file():
    for name in (*APP_SERVICES, "postgres"):
        for key, value in _services()[name]["environment"].items():
            if key in ENV_VARS_BY_NAME and ENV_VARS_BY_NAME[key].secret:
                assert str(value).startswith("${"), f"{key} must come from .env, not the compose file"


def test_env_example_lists_every_variable_the_compose_file_substitutes():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    substituted = {match.group(1): match.group(2) for match in SUBSTITUTION.finditer(compose_text)}
    example = (ROOT / ".env.example").read_text()
    listed = dict(re.findall(r"^(\w+)=(.*)$", example, flags=re.MULTILINE))
    assert set(substituted) == set(listed)
    required = example.split("# Optional:")[0]
    for name, kind in substituted.items():
        if kind == ":?":
            assert f"\n{name}=\n" in required, f"{name} is required by the compose file"
        if name in ENV_VARS_BY_NAME and ENV_VARS_BY_NAME[name].secret or "PASSWORD" in name:
            assert listed[name] == "", f".env.example gives {name} a value"


def test_postgres_archives_wal_through_the_project():
    postgres = _services()["postgres"]
    assert postgres["build"]["target"] == "postgres"
    settings = dict(option.split("=", 1) for option in postgres["command"][2::2])
    assert settings["wal_level"] == "replica" and settings["archive_mode"] == "on"
    python, manage, command, *placeholders = settings["archive_command"].split()
    assert (command, placeholders) == ("archive_wal", ["%p", "%f"])
    stage = _dockerfile_stages()["postgres"]
    assert f"python3 -m venv {Path(python).parent.parent}" in stage  # the interpreter the command names
    assert "COPY . /app" in stage and manage == "/app/manage.py"
    assert postgres["environment"]["PITR_STORAGE"] == "s3"  # the app containers read the same archive


# Loaded only by pytest (a test run brings pytest itself), never by the running app.
PYTEST_ONLY = {ROOT / "dbops" / "pytest_plugin.py"}


def _imported_distributions() -> set[str]:
    """Distributions that provide the third-party modules dbops/ and multipult/ import."""
    providers = importlib.metadata.packages_distributions()
    names = set()
    for package in ("dbops", "multipult"):
        for path in set((ROOT / package).rglob("*.py")) - PYTEST_ONLY:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("dbops", "multipult"):
                        names.update(providers.get(top, [top]))
    return {re.sub(r"[-_.]+", "-", name).lower() for name in names}


def _pinned(path: Path) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in path.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }


def test_the_image_installs_only_the_runtime_requirements_and_they_cover_every_import():
    app_stage = _dockerfile_stages()["app"]
    assert re.findall(r"pip install .*-r (\S+)", app_stage) == ["requirements.txt"]
    runtime, development = _pinned(ROOT / "requirements.txt"), _pinned(ROOT / "requirements-dev.txt")
    assert not {"pytest", "moto", "playwright", "ruff", "hypothesis", "pytest-django"} & runtime
    assert not runtime & development
    assert _imported_distributions() <= runtime, _imported_distributions() - runtime
    # and the image's web process serves the static files it collected at build time
    assert "manage.py collectstatic --no-input" in app_stage
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py"]' in app_stage


def _container_runtime() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0 and subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _container_runtime(), reason="no container runtime here; the wiring tests above run instead")
def test_the_stack_comes_up_from_the_compose_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DB_PASSWORD=compose-test-db\nMINIO_ROOT_PASSWORD=compose-test-minio\nDJANGO_SECRET_KEY=compose-test-key\n"
    )
    compose = ["docker", "compose", "--project-name", "multipult-test", "--env-file", str(env_file)]
    compose += ["-f", str(ROOT / "docker-compose.yml")]

    def in_web(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, "exec", "-T", "web", *args], capture_output=True, text=True, timeout=300)

    try:
        subprocess.run([*compose, "up", "--build", "--detach", "--wait"], check=True, timeout=1500)
        with urllib.request.urlopen("http://127.0.0.1:8000/admin/login/", timeout=10) as response:  # noqa: S310
            page = response.read().decode()
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]+\.css)"', page).group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:8000{css}", timeout=10) as response:  # noqa: S310
            assert response.headers["Content-Type"].startswith("text/css")
        backup = in_web("python", "manage.py", "backup_advanced", "--upload-s3")
        assert backup.returncode == 0, backup.stderr
        archived = in_web("python", "manage.py", "pitr", "check", "--timeout", "120")
        assert archived.returncode == 0, archived.stdout + archived.stderr
    finally:
        subprocess.run([*compose, "down", "--volumes"], timeout=600)
