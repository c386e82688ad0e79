"""TaskRun history, read-only: what each scheduled task delivery did. The schedules themselves are
django-celery-beat's Periodic Tasks, edited in its own admin."""

from django.contrib import admin

from dbops.admin.readonly import ServiceWrittenAdmin
from dbops.models import TaskRun


@admin.register(TaskRun)
class TaskRunAdmin(ServiceWrittenAdmin):
    deletable = True  # plain history: staff may prune it
    list_display = ["task_name", "status", "started_at", "finished_at", "attempts", "backup_record", "hostname"]
    list_filter = ["task_name", "status"]
    list_select_related = ["backup_record"]
    search_fields = ["task_id", "error"]
    date_hierarchy = "started_at"
