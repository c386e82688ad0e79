"""A minimal RetentionPolicy admin: editable rules, the outcome of the last run, and a dry-run preview."""

from django.contrib import admin, messages

from dbops.exceptions import DbopsError
from dbops.models import RetentionPolicy
from dbops.services.retention import retention_apply


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
    actions = ["preview_retention"]

    @admin.action(permissions=["view"], description="Preview: what retention would delete (changes nothing)")
    def preview_retention(self, request, queryset):
        for policy in queryset:
            try:
                plan = retention_apply(policy=policy, dry_run=True).plan
            except DbopsError as exc:
                self.message_user(request, f"{policy.name}: {exc}", messages.ERROR)
                continue
            doomed = ", ".join(f"#{decision.backup.pk}" for decision in plan.delete) or "nothing"
            self.message_user(request, f"{policy.name}: keeps {len(plan.keep)}, would delete {doomed}.")
