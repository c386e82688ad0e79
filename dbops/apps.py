from django.apps import AppConfig


class DbopsConfig(AppConfig):
    name = "dbops"
    verbose_name = "Database operations"

    def ready(self) -> None:
        from dbops import checks  # noqa: F401  (registers the system checks)

        # The task-profiling signals are connected by multipult.celery when the celery app is made:
        # importing celery here cost every command ~0.1 s, and only processes that run tasks need them.
