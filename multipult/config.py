"""Every setting the project reads from the environment, declared once.

Settings, `validate_config` and `show_config` all read this registry, so a variable is typed,
defaulted, documented and masked in exactly one place.

Why not django-environ: it reads any word it does not know as False for a bool (`DEBUG=ture` would
silently mean off), stops at the first bad variable, and knows nothing of secrets, ranges or docs;
the registry refuses a value it cannot read, lists every problem at once (validate_config) and
generates the DEVELOPERS.md table, so the parsers below are the few lines that remain of it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A variable is set to a value that cannot be used; the message names the variable."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of true/false, 1/0, yes/no, on/off")


def _parse_int(raw: str) -> int:
    return int(raw.strip())


def _parse_float(raw: str) -> float:
    return float(raw.strip())


def _parse_str(raw: str) -> str:
    return raw


def _parse_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


PARSERS: dict[type, Callable[[str], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: _parse_float,
    str: _parse_str,
    list: _parse_list,
}


@dataclass(frozen=True)
class EnvVar:
    name: str
    type: type
    default: Any
    help: str
    secret: bool = False
    min_value: float | None = None
    max_value: float | None = None
    group: str = "general"


@dataclass
class ResolvedValue:
    var: EnvVar
    value: Any
    source: str  # "env" or "default"

    @property
    def display(self) -> str:
        if self.var.secret and self.value:
            return mask_secret(str(self.value))
        if isinstance(self.value, list):
            return ",".join(self.value)
        return "" if self.value is None else str(self.value)


def mask_secret(value: str) -> str:
    """Shows only that a secret is set and its length class, never a character of it."""
    return "********" if value else ""


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("DEBUG", bool, False, "Django debug mode; also enables django-debug-toolbar."),
    EnvVar("DJANGO_SECRET_KEY", str, None, "Django SECRET_KEY; generated once into var/ when unset.", secret=True),
    EnvVar("DJANGO_ALLOWED_HOSTS", list, ["localhost", "127.0.0.1", "[::1]"], "Comma-separated ALLOWED_HOSTS."),
    EnvVar("DB_HOST", str, None, "PostgreSQL host; when unset the embedded SQLite database is used.", group="database"),
    EnvVar("DB_PORT", int, 5432, "PostgreSQL port.", min_value=1, max_value=65535, group="database"),
    EnvVar("DB_NAME", str, "multipult", "PostgreSQL database name.", group="database"),
    EnvVar("DB_USER", str, "postgres", "PostgreSQL user.", group="database"),
    EnvVar(
        "DB_PASSWORD",
        str,
        "",
        "PostgreSQL password (passed to child processes via PGPASSWORD).",
        secret=True,
        group="database",
    ),
    EnvVar("SQLITE_PATH", str, "var/multipult.sqlite3", "SQLite file used when DB_HOST is unset.", group="database"),
    EnvVar(
        "OPS_DB_NAME",
        str,
        None,
        "PostgreSQL database of the operations state (backup catalog, task runs, schedules, policies, "
        "snapshots); kept apart so a restore never rewinds it. Unset: <DB_NAME>_ops on the same server.",
        group="database",
    ),
    EnvVar(
        "OPS_DB_HOST",
        str,
        None,
        "Server of the operations database (same user and password). Unset: DB_HOST. Another server keeps "
        "the operations state out of a point-in-time recovery, which rewinds a whole server.",
        group="database",
    ),
    EnvVar(
        "OPS_DB_PORT", int, None, "Port of OPS_DB_HOST. Unset: DB_PORT.", min_value=1, max_value=65535, group="database"
    ),
    EnvVar(
        "OPS_SQLITE_PATH",
        str,
        None,
        "SQLite file of the operations state when DB_HOST is unset. Unset: beside SQLITE_PATH, named <name>-ops.",
        group="database",
    ),
    EnvVar(
        "REDIS_HOST", str, None, "Redis host for the celery broker; when unset tasks run in-process.", group="redis"
    ),
    EnvVar("REDIS_PORT", int, 6379, "Redis port.", min_value=1, max_value=65535, group="redis"),
    EnvVar("REDIS_DB", int, 0, "Redis database number for the celery broker and results.", min_value=0, group="redis"),
    EnvVar("QUERY_PROFILING_ENABLED", bool, False, "Time every SQL statement per request/task.", group="profiling"),
    EnvVar(
        "SLOW_QUERY_THRESHOLD_MS",
        float,
        100.0,
        "Statements slower than this are logged as slow.",
        min_value=0,
        group="profiling",
    ),
    EnvVar("LOG_ALL_QUERIES", bool, False, "Log every statement, not only slow ones.", group="profiling"),
    EnvVar(
        "N_PLUS_ONE_THRESHOLD",
        int,
        5,
        "Repeats of one normalized statement in a request that count as N+1.",
        min_value=2,
        group="profiling",
    ),
    EnvVar(
        "N_PLUS_ONE_RAISE",
        bool,
        False,
        "Raise instead of warning on N+1 queries (the test suite turns it on, see dbops.pytest_plugin).",
        group="profiling",
    ),
    EnvVar(
        "GRAPHQL_ALLOW_ANONYMOUS",
        bool,
        False,
        "Serve /graphql to anonymous users (by default it needs a logged-in user).",
        group="graphql",
    ),
    EnvVar(
        "GRAPHQL_MAX_DEPTH", int, 8, "Deepest field nesting a GraphQL query may have.", min_value=1, group="graphql"
    ),
    EnvVar(
        "GRAPHQL_MAX_COST",
        int,
        100_000,
        "Largest cost a GraphQL query may have: each field weighs 1, times the limits of the lists around it.",
        min_value=1,
        group="graphql",
    ),
    EnvVar(
        "GRAPHQL_MAX_ALIASES", int, 20, "Most aliased fields one GraphQL query may have.", min_value=0, group="graphql"
    ),
    EnvVar(
        "GRAPHQL_MAX_ROOT_FIELDS", int, 10, "Most root fields one GraphQL query may have.", min_value=1, group="graphql"
    ),
    EnvVar(
        "GRAPHQL_MAX_RESPONSE_BYTES",
        int,
        5_000_000,
        "Largest GraphQL response body; a larger one is replaced by an error naming this limit.",
        min_value=1000,
        group="graphql",
    ),
    EnvVar("BACKUP_DIR", str, "backups", "Local folder for backup artifacts.", group="backups"),
    EnvVar("S3_BACKUP_BUCKET", str, None, "S3 bucket for uploaded backups; unset disables S3.", group="backups"),
    EnvVar("S3_ENDPOINT_URL", str, None, "S3-compatible endpoint (MinIO, moto); unset means AWS.", group="backups"),
    EnvVar("AWS_ACCESS_KEY_ID", str, None, "S3 access key id.", secret=True, group="backups"),
    EnvVar("AWS_SECRET_ACCESS_KEY", str, None, "S3 secret access key.", secret=True, group="backups"),
    EnvVar("AWS_REGION", str, "us-east-1", "S3 region.", group="backups"),
    EnvVar(
        "BACKUP_ENCRYPTION_KEYS",
        list,
        [],
        "Key ring for encrypted backups, comma-separated, NEWEST FIRST: the first key encrypts new backups, "
        "every listed key decrypts (rotate by putting the new key first and keeping the old ones after it).",
        secret=True,
        group="backups",
    ),
    EnvVar(
        "BACKUP_ENCRYPTION_KEY",
        str,
        None,
        "A single backup key (a one-key ring); with BACKUP_ENCRYPTION_KEYS set it is the oldest key of the ring.",
        secret=True,
        group="backups",
    ),
    EnvVar(
        "BACKUP_NOTIFY_EMAILS",
        list,
        [],
        "Comma-separated addresses mailed (besides ADMINS) when a scheduled backup task fails.",
        group="backups",
    ),
    EnvVar(
        "BACKUP_LOCAL_COPY",
        bool,
        True,
        "Scheduled backups that go to S3 also keep a local copy; false streams them straight to S3 "
        "(no local artifact, bounded memory).",
        group="backups",
    ),
    EnvVar(
        "BACKUP_COPY_TARGETS",
        list,
        [],
        "Comma-separated further places every managed backup is copied to, each copy checked by SHA-256: "
        "s3://bucket[/prefix] (same endpoint and credentials as S3_BACKUP_BUCKET) or an absolute folder.",
        group="backups",
    ),
    EnvVar(
        "EMAIL_HOST",
        str,
        None,
        "SMTP server for failure notifications; unset means notifications are only logged (no SMTP connection).",
        group="mail",
    ),
    EnvVar(
        "EMAIL_PORT",
        int,
        25,
        "SMTP port (587 with EMAIL_USE_TLS, 465 with EMAIL_USE_SSL).",
        min_value=1,
        max_value=65535,
        group="mail",
    ),
    EnvVar("EMAIL_HOST_USER", str, "", "SMTP user; empty means no SMTP authentication.", group="mail"),
    EnvVar("EMAIL_HOST_PASSWORD", str, "", "SMTP password.", secret=True, group="mail"),
    EnvVar("EMAIL_USE_TLS", bool, False, "STARTTLS on a plain connection (usually port 587).", group="mail"),
    EnvVar(
        "EMAIL_USE_SSL", bool, False, "Implicit TLS (usually port 465); not together with EMAIL_USE_TLS.", group="mail"
    ),
    EnvVar(
        "EMAIL_TIMEOUT",
        float,
        10.0,
        "Seconds an SMTP connect/command may take, so a dead mail server cannot hang a backup task.",
        min_value=0.1,
        max_value=300,
        group="mail",
    ),
    EnvVar("DEFAULT_FROM_EMAIL", str, "dbops@localhost", "From address of failure notifications.", group="mail"),
    EnvVar("SERVER_EMAIL", str, "dbops@localhost", "From address of Django's own error mails to ADMINS.", group="mail"),
    EnvVar(
        "ANONYMIZATION_SALT",
        str,
        None,
        "Secret key for deterministic anonymization (export_data --anonymize); unset derives one from the secret key.",
        secret=True,
        group="datamigration",
    ),
    EnvVar(
        "PITR_STORAGE", str, "local", "Where WAL and PITR base backups go: local (BACKUP_DIR) or s3.", group="backups"
    ),
    EnvVar(
        "BACKUP_MAX_AGE_HOURS",
        float,
        26.0,
        "health_check: the last successful backup may be this old.",
        min_value=0.1,
        group="health",
    ),
    EnvVar(
        "VERIFY_MAX_AGE_HOURS",
        float,
        192.0,
        "health_check: the last verified backup may be this old.",
        min_value=0.1,
        group="health",
    ),
    EnvVar(
        "HEALTH_MIN_FREE_DISK_MB",
        int,
        1024,
        "health_check: less free space in BACKUP_DIR is degraded.",
        min_value=0,
        group="health",
    ),
    EnvVar(
        "HEALTH_TIMEOUT_SECONDS",
        float,
        2.0,
        "health_check: timeout of each probe (Redis, celery, S3).",
        min_value=0.1,
        max_value=60,
        group="health",
    ),
    EnvVar(
        "HEALTH_CACHE_SECONDS",
        float,
        5.0,
        "/health/: seconds one process reuses its last report (0 computes every request); health_check never caches.",
        min_value=0,
        max_value=300,
        group="health",
    ),
    EnvVar("LOG_LEVEL", str, "INFO", "Root log level (DEBUG, INFO, WARNING, ERROR).", group="logging"),
    EnvVar(
        "LOG_FORMAT",
        str,
        "auto",
        "json (structured), text (one plain line per record), or auto: text when stderr is a terminal, else json.",
        group="logging",
    ),
)

ENV_VARS_BY_NAME: dict[str, EnvVar] = {var.name: var for var in ENV_VARS}


def _check_range(var: EnvVar, value: Any) -> None:
    if var.min_value is not None and value < var.min_value:
        raise ConfigError(f"{var.name}={value!r}: must be >= {var.min_value:g}")
    if var.max_value is not None and value > var.max_value:
        raise ConfigError(f"{var.name}={value!r}: must be <= {var.max_value:g}")


def resolve(var: EnvVar, environ: Mapping[str, str]) -> ResolvedValue:
    """Reads one variable; raises ConfigError naming the variable when its value is unusable."""
    raw = environ.get(var.name)
    if raw is None or (raw == "" and var.type is not str):
        return ResolvedValue(var, var.default, "default")
    try:
        value = PARSERS[var.type](raw)
    except ValueError as exc:
        raise ConfigError(f"{var.name}={raw!r} is not a valid {var.type.__name__}: {exc}") from None
    _check_range(var, value)
    return ResolvedValue(var, value, "env")


def resolve_all(environ: Mapping[str, str] | None = None) -> tuple[dict[str, ResolvedValue], list[str]]:
    """Resolves every variable; returns the values and every problem found (not only the first)."""
    environ = os.environ if environ is None else environ
    values: dict[str, ResolvedValue] = {}
    problems: list[str] = []
    for var in ENV_VARS:
        try:
            values[var.name] = resolve(var, environ)
        except ConfigError as exc:
            problems.append(str(exc))
            values[var.name] = ResolvedValue(var, var.default, "default")
    if values["PITR_STORAGE"].value not in {"local", "s3"}:
        problems.append(f"PITR_STORAGE={values['PITR_STORAGE'].value!r}: must be local or s3")
    if values["EMAIL_USE_TLS"].value and values["EMAIL_USE_SSL"].value:
        problems.append("EMAIL_USE_SSL=True: not together with EMAIL_USE_TLS (STARTTLS or implicit TLS, not both)")
    for name in ("DEFAULT_FROM_EMAIL", "SERVER_EMAIL"):
        if "@" not in values[name].value:
            problems.append(f"{name}={values[name].value!r}: must be an e-mail address")
    if values["LOG_FORMAT"].value not in {"json", "text", "auto"}:
        problems.append(f"LOG_FORMAT={values['LOG_FORMAT'].value!r}: must be json, text or auto")
    if values["LOG_LEVEL"].value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        problems.append(f"LOG_LEVEL={values['LOG_LEVEL'].value!r}: must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return values, problems


@dataclass
class Config:
    values: dict[str, ResolvedValue] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name].value


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Loads the configuration, failing with every bad variable named in one message."""
    values, problems = resolve_all(environ)
    if problems:
        raise ConfigError("Invalid configuration: " + "; ".join(problems))
    return Config(values)


def project_path(value: str) -> Path:
    """Relative paths in the environment are relative to the project folder, not the cwd."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else BASE_DIR / path


def persistent_secret_key(var_dir: Path) -> str:
    """A per-installation key kept in var/, so the embedded default needs no setup and no shared secret."""
    key_file = var_dir / ".secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first; use theirs
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def env_vars_markdown() -> str:
    """The variables table of DEVELOPERS.md, generated so the document cannot drift from the code."""
    lines = ["| variable | type | default | secret | meaning |", "|---|---|---|---|---|"]
    for var in ENV_VARS:
        if isinstance(var.default, list):
            default = ",".join(var.default)
        elif isinstance(var.default, bool):
            default = str(var.default).lower()
        else:
            default = "" if var.default is None else str(var.default)
        bounds = []
        if var.min_value is not None:
            bounds.append(f">= {var.min_value:g}")
        if var.max_value is not None:
            bounds.append(f"<= {var.max_value:g}")
        kind = var.type.__name__ + (f" ({', '.join(bounds)})" if bounds else "")
        lines.append(
            f"| `{var.name}` | {kind} | {f'`{default}`' if default else 'unset'} | "
            f"{'yes' if var.secret else ''} | {var.help} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(env_vars_markdown())
