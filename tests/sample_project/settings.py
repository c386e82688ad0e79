"""Settings of the sample library project: Django's basics, dbops and the library app.

The database comes from libpq's own variables (PGHOST, PGPORT, PGUSER, PGPASSWORD) and LIBRARY_DB_NAME;
backups go to LIBRARY_BACKUP_DIR. No MultiPULT setting is read or needed.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "sample-project-not-secret-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "dbops",
    "tests.sample_project.library",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.sample_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "NAME": os.environ.get("LIBRARY_DB_NAME", "library"),
    }
}

BACKUP_DIR = Path(os.environ.get("LIBRARY_BACKUP_DIR", BASE_DIR / "backups"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "backups": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": BACKUP_DIR}},
}

DBOPS = {
    "ENTITIES": [
        {"name": "authors", "model": "library.Author", "since_field": "created_at", "anonymize": {"name": "fake:name"}},
        {
            "name": "books",
            "model": "library.Book",
            "companions": ["authors"],
            "anonymize": {"title": "keep", "isbn": "keep", "tags": "keep"},
        },
        {
            "name": "loans",
            "model": "library.Loan",
            "parent": ["book", "books"],
            "anonymize": {"borrower_email": "fake:email"},
        },
    ],
}

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
