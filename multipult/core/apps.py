from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "multipult.core"
    label = "core"
    verbose_name = "MultiPULT domain"
