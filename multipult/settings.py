"""Django settings. Every value comes from the environment through multipult.config."""

from __future__ import annotations

import hashlib
import hmac
import sys
from pathlib import Path

from multipult.config import BASE_DIR, ConfigError, load_config, persistent_secret_key, project_path

CONFIG = load_config()

VAR_DIR = BASE_DIR / "var"
DEBUG = CONFIG["DEBUG"]
SECRET_KEY = CONFIG["DJANGO_SECRET_KEY"] or persistent_secret_key(VAR_DIR)
ALLOWED_HOSTS = CONFIG["DJANGO_ALLOWED_HOSTS"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",  # runserver serves static files through WhiteNoise too, as gunicorn does
    "django.contrib.staticfiles",
    "django_celery_beat",
    "graphene_django",
    "multipult.core",
    "dbops",
]

MIDDLEWARE = [
    "dbops.middleware.QueryProfilingMiddleware",  # outermost: sees every statement of the request
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files with DEBUG off, from STATIC_ROOT (collectstatic)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if DEBUG:
    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    INTERNAL_IPS = ["127.0.0.1", "::1"]

ROOT_URLCONF = "multipult.urls"
WSGI_APPLICATION = "multipult.wsgi.application"
ASGI_APPLICATION = "multipult.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: PostgreSQL when DB_HOST is set, otherwise the embedded SQLite file.
if CONFIG["DB_HOST"]:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": CONFIG["DB_HOST"],
            "PORT": CONFIG["DB_PORT"],
            "NAME": CONFIG["DB_NAME"],
            "USER": CONFIG["DB_USER"],
            "PASSWORD": CONFIG["DB_PASSWORD"],
            "CONN_MAX_AGE": 0,
            "TEST": {"NAME": f"test_{CONFIG['DB_NAME']}"},
        }
    }
    # The operations state lives in a database of its own, by default on the same server (see DBOPS below).
    OPS_DB_NAME = CONFIG["OPS_DB_NAME"] or f"{CONFIG['DB_NAME']}_ops"
    DATABASES["dbops"] = {
        **DATABASES["default"],
        "HOST": CONFIG["OPS_DB_HOST"] or CONFIG["DB_HOST"],
        "PORT": CONFIG["OPS_DB_PORT"] or CONFIG["DB_PORT"],
        "NAME": OPS_DB_NAME,
        "TEST": {"NAME": f"test_{OPS_DB_NAME}"},
    }
else:
    SQLITE_FILE = project_path(CONFIG["SQLITE_PATH"])
    SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_FILE,
            # WAL lets readers (and the online backup API) run while a writer is active.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"},
        }
    }
    OPS_SQLITE_FILE = (
        project_path(CONFIG["OPS_SQLITE_PATH"])
        if CONFIG["OPS_SQLITE_PATH"]
        else SQLITE_FILE.with_name(f"{SQLITE_FILE.stem}-ops{SQLITE_FILE.suffix}")
    )
    OPS_SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
    DATABASES["dbops"] = {**DATABASES["default"], "NAME": OPS_SQLITE_FILE}

# dbops keeps the operations state (catalog, task runs, schedules, policies, snapshots, slow queries)
# in the `dbops` alias, so restoring the application database never rewinds it (README: "What survives
# what"). The router sends dbops's and django-celery-beat's models there.
DBOPS = {"DATABASE": "dbops"}
DATABASE_ROUTERS = ["dbops.routers.OperationsRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "core.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "multipult" / "graphql" / "static"]  # GraphiQL's assets, so it works offline
MEDIA_ROOT = VAR_DIR / "media"

# Backups: always a local copy in BACKUP_DIR; S3 as a second location when a bucket is named.
BACKUP_DIR = project_path(CONFIG["BACKUP_DIR"])
S3_BACKUP_BUCKET = CONFIG["S3_BACKUP_BUCKET"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names (far-future caching); collectstatic writes them and their manifest.
    "staticfiles": {"BACKEND": "multipult.staticfiles.StaticFilesStorage"},  # WhiteNoise, hashed and compressed
    "backups": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": BACKUP_DIR, "file_permissions_mode": 0o600, "directory_permissions_mode": 0o700},
    },
}


def _s3_storage(bucket: str, location: str = "backups") -> dict:
    """A bucket on the configured S3 endpoint, with the configured credentials."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": CONFIG["S3_ENDPOINT_URL"],
            "access_key": CONFIG["AWS_ACCESS_KEY_ID"],
            "secret_key": CONFIG["AWS_SECRET_ACCESS_KEY"],
            "region_name": CONFIG["AWS_REGION"],
            "default_acl": None,
            "file_overwrite": False,
            "location": location,
        },
    }


if S3_BACKUP_BUCKET:
    STORAGES["backups_s3"] = _s3_storage(S3_BACKUP_BUCKET)
BACKUP_ENCRYPTION_KEYS = CONFIG["BACKUP_ENCRYPTION_KEYS"]  # newest first (dbops.artifacts.keyring)
BACKUP_ENCRYPTION_KEY = CONFIG["BACKUP_ENCRYPTION_KEY"]
for number, target in enumerate(CONFIG["BACKUP_COPY_TARGETS"], start=1):  # DBOPS["COPY_TARGETS"] below
    if target.startswith("s3://"):
        copy_bucket, _, copy_prefix = target.removeprefix("s3://").partition("/")
        STORAGES[f"backups_copy_{number}"] = _s3_storage(copy_bucket, copy_prefix.strip("/") or "backups")
    elif Path(target).is_absolute():
        STORAGES[f"backups_copy_{number}"] = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": target, "file_permissions_mode": 0o600, "directory_permissions_mode": 0o700},
        }
    else:
        raise ConfigError(f"BACKUP_COPY_TARGETS: {target!r} is neither s3://bucket[/prefix] nor an absolute folder.")
BACKUP_LOCAL_COPY = CONFIG["BACKUP_LOCAL_COPY"]  # false: scheduled S3 backups stream straight to S3
PITR_STORAGE = CONFIG["PITR_STORAGE"]  # "local" (STORAGES["backups"]) or "s3" (STORAGES["backups_s3"])

# Data migration: the keyed hash behind --anonymize; derived from SECRET_KEY when not set on its own.
ANONYMIZATION_SALT = (
    CONFIG["ANONYMIZATION_SALT"]
    or hmac.new(SECRET_KEY.encode(), b"multipult.dbops.anonymization", hashlib.sha256).hexdigest()
)

# The rest of dbops's settings (see dbops.conf): MultiPULT's data-migration entities, in dependency order,
# with the anonymization rule of every column that looks personal ("keep": configuration or reference data).
DBOPS |= {
    "COPY_TARGETS": tuple(f"backups_copy_{n}" for n in range(1, len(CONFIG["BACKUP_COPY_TARGETS"]) + 1)),
    "ENTITIES": [
        # `anonymize`: the masking rule of each column (dbops/services/datamigration/masking_rules.py); an
        # anonymized export refuses any free-text column without one.
        {
            "name": "roles",
            "model": "core.Role",
            "since_field": "created_at",
            "anonymize": {"name": "keep", "description": "keep"},  # configuration, not people
        },
        {
            "name": "users",
            "model": "core.User",
            "since_field": "date_joined",
            "companions": ["roles", "user_roles"],
            "exclude": ["password"],
            "anonymize": {
                "username": "fake:username",
                "first_name": "fake:first_name",
                "last_name": "fake:last_name",
                "email": "fake:email",
                "phone": "fake:phone",
                "date_joined": "generalize:month",
                "last_login": "generalize:month",
            },
            "quasi_identifiers": ["date_joined", "is_staff", "is_active"],
        },
        # A role is what a user may do (admin, operator...): a membership grants privileges.
        {"name": "user_roles", "model": "core.User_roles", "parent": ["user", "users"], "privileged": True},
        {
            "name": "concepts",
            "model": "core.Concept",
            "since_field": "updated_at",
            # a concept's code and name are domain terms; its description is free text people write
            "anonymize": {"code": "keep", "name": "keep", "description": "fake:text"},
        },
        {
            "name": "dictionaries",
            "model": "core.Dictionary",
            "since_field": "created_at",
            "companions": ["dictionary_entries"],
            "anonymize": {"name": "keep", "description": "fake:text"},
        },
        {
            "name": "dictionary_entries",
            "model": "core.DictionaryEntry",
            "parent": ["dictionary", "dictionaries"],
            "anonymize": {"key": "keep", "value": "keep"},  # reference data (codes, labels), not about people
        },
        {
            "name": "stored_files",
            "model": "core.StoredFile",
            "since_field": "created_at",
            "anonymize": {
                "name": "fake:filename",
                "storage_path": "fake:filepath",
                "content_type": "keep",
                "sha256": "hash",  # the hash of a file identifies it as well as its name does
                "entity_type": "keep",
            },
        },
        {
            "name": "audit_logs",
            "model": "core.AuditLog",
            "since_field": "timestamp",
            "anonymize": {"changes": "null", "ip_address": "fake:ip", "entity_type": "keep"},
        },
    ],
    "CELERY_APP": "multipult.celery.app",
    "MASK_SECRETS": "multipult.core.services.configuration.mask_configured_secrets",
    # GraphQL plumbing: the resolver's field path says more than these frames.
    "PROFILING_SKIP_FILES": ("multipult/graphql/execution.py", "multipult/graphql/futures.py"),
}

# Celery: Redis when REDIS_HOST is set; otherwise tasks run in-process (eager).
REDIS_URL = (
    f"redis://{CONFIG['REDIS_HOST']}:{CONFIG['REDIS_PORT']}/{CONFIG['REDIS_DB']}" if CONFIG["REDIS_HOST"] else None
)
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Long, acks_late tasks: one at a time per worker process, and Redis must not redeliver a message
# while its task can still be running (visibility timeout above the longest hard time limit).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
# Failure notifications (dbops.services.ops.notifications): ADMINS plus BACKUP_NOTIFY_EMAILS.
BACKUP_NOTIFY_EMAILS = CONFIG["BACKUP_NOTIFY_EMAILS"]
# Mail: SMTP when EMAIL_HOST is set; otherwise notifications are only logged (no connection attempted).
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if CONFIG["EMAIL_HOST"] else "dbops.mail.LogOnlyEmailBackend"
)
EMAIL_HOST = CONFIG["EMAIL_HOST"] or "localhost"
EMAIL_PORT = CONFIG["EMAIL_PORT"]
EMAIL_HOST_USER = CONFIG["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = CONFIG["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = CONFIG["EMAIL_USE_TLS"]
EMAIL_USE_SSL = CONFIG["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = CONFIG["EMAIL_TIMEOUT"]
DEFAULT_FROM_EMAIL = CONFIG["DEFAULT_FROM_EMAIL"]
SERVER_EMAIL = CONFIG["SERVER_EMAIL"]

# Query profiling (dbops.middleware).
QUERY_PROFILING_ENABLED = CONFIG["QUERY_PROFILING_ENABLED"]
SLOW_QUERY_THRESHOLD_MS = CONFIG["SLOW_QUERY_THRESHOLD_MS"]
LOG_ALL_QUERIES = CONFIG["LOG_ALL_QUERIES"]
N_PLUS_ONE_THRESHOLD = CONFIG["N_PLUS_ONE_THRESHOLD"]
N_PLUS_ONE_RAISE = CONFIG["N_PLUS_ONE_RAISE"]
# Deliberate repeats (fnmatch patterns of call sites, GraphQL paths, statements); tests add their own by marker.
N_PLUS_ONE_ALLOW = (
    # one plan per analyzed statement (and per candidate index): its session settings, PREPARE, EXPLAIN, DEALLOCATE
    "dbops/engines/postgresql/introspection.py:explain_on:*",
    "dbops/engines/postgresql/introspection.py:plan_session:*",
    "dbops/engines/postgresql/introspection.py:prepared_release:*",
    "dbops/engines/postgresql/introspection.py:PostgreSQLIntrospection.table_facts:*",  # and its tables' facts
)

# Health thresholds and probe timeout (dbops.services.ops.health, health_check, /health/).
BACKUP_MAX_AGE_HOURS = CONFIG["BACKUP_MAX_AGE_HOURS"]
VERIFY_MAX_AGE_HOURS = CONFIG["VERIFY_MAX_AGE_HOURS"]
HEALTH_MIN_FREE_DISK_MB = CONFIG["HEALTH_MIN_FREE_DISK_MB"]
HEALTH_TIMEOUT_SECONDS = CONFIG["HEALTH_TIMEOUT_SECONDS"]
HEALTH_CACHE_SECONDS = CONFIG["HEALTH_CACHE_SECONDS"]

GRAPHENE = {"SCHEMA": "multipult.graphql.schema.schema"}
GRAPHQL_ALLOW_ANONYMOUS = CONFIG["GRAPHQL_ALLOW_ANONYMOUS"]
GRAPHQL_MAX_DEPTH = CONFIG["GRAPHQL_MAX_DEPTH"]
GRAPHQL_MAX_COST = CONFIG["GRAPHQL_MAX_COST"]
GRAPHQL_MAX_ALIASES = CONFIG["GRAPHQL_MAX_ALIASES"]
GRAPHQL_MAX_ROOT_FIELDS = CONFIG["GRAPHQL_MAX_ROOT_FIELDS"]
GRAPHQL_MAX_RESPONSE_BYTES = CONFIG["GRAPHQL_MAX_RESPONSE_BYTES"]

# auto: people at a terminal read plain lines; log collectors (stderr not a TTY) get JSON.
LOG_FORMAT = CONFIG["LOG_FORMAT"]
if LOG_FORMAT == "auto":
    LOG_FORMAT = "text" if sys.stderr is not None and sys.stderr.isatty() else "json"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_secrets": {"()": "multipult.logging.SecretMaskingFilter"}},
    "formatters": {
        "json": {
            "()": "multipult.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        # stderr, so command output on stdout stays clean for --json consumers.
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": LOG_FORMAT,
            "filters": ["mask_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": CONFIG["LOG_LEVEL"].upper()},
    "loggers": {
        "django": {"level": "INFO" if DEBUG else "WARNING", "propagate": True},
        "django.db.backends": {"level": "WARNING", "propagate": True},
    },
}
