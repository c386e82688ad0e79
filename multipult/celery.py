"""The celery app. Broker is Redis when REDIS_HOST is set; otherwise settings make tasks eager."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multipult.settings")

app = Celery("multipult")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Every task is profiled while QUERY_PROFILING_ENABLED. Connected here, where the app is made, so
# that only processes that run tasks import celery; the profiler itself is imported on first use
# because it needs the app registry, which the worker sets up after importing this module.
@task_prerun.connect(weak=False, dispatch_uid="dbops.profiling.task_started")
def _profile_task_started(**kwargs) -> None:
    from dbops.instrumentation.profiling import task_profile_start

    task_profile_start(**kwargs)


@task_postrun.connect(weak=False, dispatch_uid="dbops.profiling.task_finished")
def _profile_task_finished(**kwargs) -> None:
    from dbops.instrumentation.profiling import task_profile_finish

    task_profile_finish(**kwargs)
