from django.apps import AppConfig


class DbopsConfig(AppConfig):
    name = "dbops"
    verbose_name = "Database operations"

    def ready(self) -> None:
        from dbops import checks  # noqa: F401  (registers the system checks)
        from dbops.services.profiling import connect_celery_signals

        connect_celery_signals()
