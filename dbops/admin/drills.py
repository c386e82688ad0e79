"""PitrDrill history, read-only (staff with dbops.view_pitrdrill): each weekly PITR drill's RTO and RPO."""

from django.contrib import admin

from dbops.admin.readonly import ServiceWrittenAdmin
from dbops.models import PitrDrill


@admin.register(PitrDrill)
class PitrDrillAdmin(ServiceWrittenAdmin):
    list_display = ["started_at", "status", "target_time", "base_backup", "recovery_seconds", "rpo_seconds"]
    list_filter = ["status"]
    list_select_related = ["base_backup"]
    date_hierarchy = "started_at"
    list_per_page = 50
