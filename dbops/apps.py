from django.apps import AppConfig


class DbopsConfig(AppConfig):
    name = "dbops"
    verbose_name = "Database operations"

    def ready(self) -> None:
        from dbops import checks  # noqa: F401  (registers the system checks)
        from dbops.conf import project_defaults_apply

        project_defaults_apply()

        # The task-profiling signals are connected by the project where it makes its celery app
        # (task_profile_start/finish): importing celery here cost every command ~0.1 s.
