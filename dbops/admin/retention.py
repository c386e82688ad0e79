"""A minimal RetentionPolicy admin: editable rules and the outcome of the last run."""

from django.contrib import admin

from dbops.models import RetentionPolicy


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "enabled",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_last",
        "database_alias",
        "kind",
        "tag",
        "last_run_at",
        "last_run_ok",
    ]
    list_filter = ["enabled", "kind"]
    list_editable = ["enabled"]
    search_fields = ["name", "tag"]
    readonly_fields = ["created_at", "updated_at", "last_run_at", "last_run_ok", "last_run_summary"]
    fieldsets = [
        (None, {"fields": ["name", "enabled"]}),
        ("Keep", {"fields": ["keep_daily", "keep_weekly", "keep_monthly", "keep_last"]}),
        ("Applies to", {"fields": ["database_alias", "kind", "tag"]}),
        ("Last run", {"fields": ["last_run_at", "last_run_ok", "last_run_summary", "created_at", "updated_at"]}),
    ]
