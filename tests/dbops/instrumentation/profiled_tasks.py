"""A task for the real-worker profiling test; the worker imports this module with --include."""

from multipult.celery import app
from multipult.core.models import User


@app.task(name="tests.profiled_user_count")
def profiled_user_count() -> int:
    return User.objects.count() + User.objects.filter(is_active=True).count()
