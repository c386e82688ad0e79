"""The celery app. Broker is Redis when REDIS_HOST is set; otherwise settings make tasks eager."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")

app = Celery("multipult")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
