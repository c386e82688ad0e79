"""validate_config / show_config: the environment as the registry in multipult.config reads it.

Both work from the environment alone (no Django settings, no ORM), so they still run and explain
what is wrong when a bad variable stops the settings from loading (see multipult.core.management.standalone).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dbops.engines import database_probe
from multipult.config import ENV_VARS, ResolvedValue, mask_secret, project_path, resolve_all

MIN_SECRET_KEY_LENGTH = 50  # Django's own deploy check (security.W009) asks for at least 50


@dataclass(frozen=True)
class ConfigEntry:
    name: str
    value: Any  # typed value, or "********" for a set secret
    display: str
    source: str  # "env" or "default"
    secret: bool
    group: str
    help: str


@dataclass(frozen=True)
class ConfigProblem:
    name: str  # the variable (or "database", "redis", "s3" for reachability)
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def config_show(*, environ: Mapping[str, str] | None = None) -> list[ConfigEntry]:
    """Every registered variable with its effective value and where it came from; secrets masked."""
    values, _ = resolve_all(os.environ if environ is None else environ)
    entries = []
    for var in ENV_VARS:
        resolved = values[var.name]
        value = mask_secret(str(resolved.value)) if var.secret and resolved.value else resolved.value
        entries.append(ConfigEntry(var.name, value, resolved.display, resolved.source, var.secret, var.group, var.help))
    return entries


def config_validate(*, environ: Mapping[str, str] | None = None, deep: bool = False) -> list[ConfigProblem]:
    """Every problem at once: types and ranges, S3 completeness, BACKUP_DIR writable, database reachable;
    with deep=True also Redis and the S3 bucket reachable. An empty list means the configuration is usable."""
    environ = os.environ if environ is None else environ
    values, type_problems = resolve_all(environ)
    problems = []
    for text in type_problems:  # "NAME='raw' is not a valid int: …" / "NAME=70000: must be <= …"
        name, _, detail = text.partition("=")
        problems.append(ConfigProblem(name, detail))
    timeout = float(values["HEALTH_TIMEOUT_SECONDS"].value)
    problems += _check_django(values)
    problems += _check_s3_settings(values)
    problems += _check_backup_dir(values)
    problems += _check_database(values, timeout)
    if deep:
        problems += _check_redis(values, timeout)
        problems += _check_s3_bucket(values, timeout)
        problems += _check_mail(values)
    return problems


def _value(values: dict[str, ResolvedValue], name: str) -> Any:
    return values[name].value


def _check_django(values) -> list[ConfigProblem]:
    problems = []
    secret_key = _value(values, "DJANGO_SECRET_KEY")
    if secret_key is not None and len(secret_key) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            ConfigProblem("DJANGO_SECRET_KEY", f"is shorter than {MIN_SECRET_KEY_LENGTH} characters (length hidden)")
        )
    if not _value(values, "DEBUG") and not _value(values, "DJANGO_ALLOWED_HOSTS"):
        problems.append(ConfigProblem("DJANGO_ALLOWED_HOSTS", "is empty while DEBUG is off: every request is refused"))
    return problems


def _check_s3_settings(values) -> list[ConfigProblem]:
    bucket = _value(values, "S3_BACKUP_BUCKET")
    key_id, secret = _value(values, "AWS_ACCESS_KEY_ID"), _value(values, "AWS_SECRET_ACCESS_KEY")
    endpoint = _value(values, "S3_ENDPOINT_URL")
    problems = []
    if bool(key_id) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        problems.append(ConfigProblem(missing, "is unset while its pair is set; set both or neither"))
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            problems.append(ConfigProblem("S3_ENDPOINT_URL", f"{endpoint!r} is not an http(s) URL"))
    if bucket:
        if endpoint and not (key_id and secret):
            problems.append(
                ConfigProblem("AWS_ACCESS_KEY_ID", "S3_ENDPOINT_URL names a non-AWS server, which needs both keys")
            )
        if not _value(values, "AWS_REGION"):
            problems.append(ConfigProblem("AWS_REGION", "is empty while S3_BACKUP_BUCKET is set"))
    elif key_id or endpoint:
        problems.append(
            ConfigProblem("S3_BACKUP_BUCKET", "is unset while S3 credentials or an endpoint are set (S3 is disabled)")
        )
    return problems


def _check_backup_dir(values) -> list[ConfigProblem]:
    folder = project_path(_value(values, "BACKUP_DIR"))
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the folder is created on first use: its nearest parent must be writable
    if not existing.is_dir():
        return [ConfigProblem("BACKUP_DIR", f"{folder} is not a folder ({existing} is a file)")]
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".dbops-write-test-"):
            pass
    except OSError as exc:
        return [ConfigProblem("BACKUP_DIR", f"{folder} is not writable: {exc.strerror}")]
    return []


def _check_database(values, timeout: float) -> list[ConfigProblem]:
    """Opens the database the settings would use (PostgreSQL when DB_HOST is set), through the engine."""
    if not _value(values, "DB_HOST"):
        return _check_sqlite(project_path(_value(values, "SQLITE_PATH")))
    settings_dict = {
        "HOST": _value(values, "DB_HOST"),
        "PORT": _value(values, "DB_PORT"),
        "NAME": _value(values, "DB_NAME"),
        "USER": _value(values, "DB_USER"),
        "PASSWORD": _value(values, "DB_PASSWORD"),
    }
    failure = database_probe(engine="postgresql", settings_dict=settings_dict, timeout=timeout)
    if failure:
        return [ConfigProblem("database", f"cannot connect to PostgreSQL: {_masked(failure, values)}")]
    return []


def _check_sqlite(path: Path) -> list[ConfigProblem]:
    if path.exists():
        failure = database_probe(engine="sqlite", settings_dict={"NAME": path}, timeout=1)
        if failure:
            return [ConfigProblem("SQLITE_PATH", f"{path} is not a usable SQLite database: {failure}")]
        return []
    if not os.access(path.parent if path.parent.exists() else path.parent.parent, os.W_OK):
        return [ConfigProblem("SQLITE_PATH", f"{path} does not exist and its folder is not writable")]
    return []


def _check_redis(values, timeout: float) -> list[ConfigProblem]:
    if not _value(values, "REDIS_HOST"):
        return []
    import redis

    client = redis.Redis(
        host=_value(values, "REDIS_HOST"),
        port=_value(values, "REDIS_PORT"),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return [ConfigProblem("redis", f"cannot reach Redis: {exc}")]
    finally:
        client.close()
    return []


def _check_mail(values) -> list[ConfigProblem]:
    """Connects to EMAIL_HOST as the mail backend would (TLS/SSL, login) within EMAIL_TIMEOUT; sends nothing."""
    host = _value(values, "EMAIL_HOST")
    if not host:
        return []
    import smtplib
    import ssl

    port, timeout = _value(values, "EMAIL_PORT"), float(_value(values, "EMAIL_TIMEOUT"))
    user, password = _value(values, "EMAIL_HOST_USER"), _value(values, "EMAIL_HOST_PASSWORD")
    try:
        if _value(values, "EMAIL_USE_SSL"):
            client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if _value(values, "EMAIL_USE_TLS"):
                client.starttls(context=ssl.create_default_context())
            if user:
                client.login(user, password)
            client.noop()
    except (OSError, smtplib.SMTPException) as exc:
        # The reply or the socket error only; smtplib never puts the password in its exceptions.
        detail = str(exc).replace(password, "********") if password else str(exc)
        return [ConfigProblem("mail", f"cannot use the mail server {host}:{port}: {type(exc).__name__}: {detail}")]
    return []


def s3_client(values_or_settings: Mapping[str, Any], timeout: float):
    """A boto3 client with short timeouts and no retries, for probes (validate_config, health_check)."""
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client(
        "s3",
        endpoint_url=values_or_settings.get("endpoint_url"),
        aws_access_key_id=values_or_settings.get("access_key"),
        aws_secret_access_key=values_or_settings.get("secret_key"),
        region_name=values_or_settings.get("region_name") or "us-east-1",
        config=BotoConfig(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
    )


def _check_s3_bucket(values, timeout: float) -> list[ConfigProblem]:
    bucket = _value(values, "S3_BACKUP_BUCKET")
    if not bucket:
        return []
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(
        {
            "endpoint_url": _value(values, "S3_ENDPOINT_URL"),
            "access_key": _value(values, "AWS_ACCESS_KEY_ID"),
            "secret_key": _value(values, "AWS_SECRET_ACCESS_KEY"),
            "region_name": _value(values, "AWS_REGION"),
        },
        timeout,
    )
    try:
        client.head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        return [ConfigProblem("s3", f"cannot reach bucket {bucket!r}: {_masked(str(exc), values)}")]
    return []


def mask_configured_secrets(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replaces the value of every secret variable set in the environment with ********."""
    values, _ = resolve_all(os.environ if environ is None else environ)
    return _masked(text, values)


def _masked(text: str, values) -> str:
    """Driver messages can echo connection parameters; keep every configured secret out of them."""
    for var in ENV_VARS:
        secret = values[var.name].value if var.secret else None
        for part in secret if isinstance(secret, list) else [secret]:  # a key ring: each key
            if part and len(str(part)) >= 4:
                text = text.replace(str(part), "********")
    return text
