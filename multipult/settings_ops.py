"""Settings for the backup, restore and WAL commands (see multipult.settings_profiles).

Everything is multipult.settings; only the apps (and middleware) that serve web requests or the
scheduler's admin are left out, so a command starts in about half the time. Apps a team adds to
INSTALLED_APPS stay in: their signal handlers still see the backup records.
"""

from multipult.settings import *  # noqa: F403
from multipult.settings import INSTALLED_APPS as _ALL_APPS

WEB_ONLY_APPS = (
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "graphene_django",
    "debug_toolbar",
)

INSTALLED_APPS = [app for app in _ALL_APPS if app not in WEB_ONLY_APPS]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "multipult.urls_ops"
