"""The MultiPULT project package.

The celery app (multipult.celery) is created on first use rather than here: most management
commands never touch it, and building it costs start-up time. Everything that uses tasks imports
it first: dbops.tasks (so the shared tasks bind to it), multipult.urls (django-celery-beat's admin
lists its tasks), and `celery -A multipult`, which finds `multipult.celery.app` by itself.
"""


def __getattr__(name: str):
    if name == "celery_app":
        from multipult.celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ("celery_app",)
