"""RestoreRecord history, read-only: every restore backup_restore ran, from the CLI, the admin or a task."""

from django.contrib import admin

from dbops.admin.readonly import ServiceWrittenAdmin
from dbops.models import RestoreRecord


@admin.register(RestoreRecord)
class RestoreRecordAdmin(ServiceWrittenAdmin):
    list_display = ["started_at", "status", "source", "database_name", "triggered_by", "triggered_by_user"]
    list_filter = ["status", "triggered_by", "database_alias"]
    list_select_related = ["backup"]
    search_fields = ["source", "database_name", "triggered_by_user", "error"]
    date_hierarchy = "started_at"
