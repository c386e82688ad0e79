"""RetentionPolicy admin: editable rules, the outcome of the last run, and a dry-run "Preview"."""

from django import forms
from django.contrib import admin, messages
from django.db import DEFAULT_DB_ALIAS, connections
from django.template.response import TemplateResponse

from dbops.conf import operations_alias
from dbops.exceptions import DbopsError
from dbops.models import RetentionPolicy


def database_alias_choices() -> list[tuple[str, str]]:
    """Every configured database a backup can be of (not the operations database), and blank: every one."""
    aliases = [alias for alias in connections.settings if alias != operations_alias() or alias == DEFAULT_DB_ALIAS]
    return [("", "every database"), *((alias, alias) for alias in aliases)]


class RetentionPolicyForm(forms.ModelForm):
    # a choice, not free text: a misspelt alias would save and then fail every nightly run
    database_alias = forms.ChoiceField(
        choices=database_alias_choices,
        required=False,
        help_text=RetentionPolicy._meta.get_field("database_alias").help_text,
    )
    # no Meta: the admin builds the form with the model and the fields of its fieldsets


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    form = RetentionPolicyForm
    list_display = [
        "name",
        "enabled",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_last",
        "recovery_window_days",
        "database_alias",
        "kind",
        "tag",
        "last_run_at",
        "last_run_ok",
    ]
    list_filter = ["enabled", "kind"]
    list_editable = ["enabled"]
    search_fields = ["name", "tag"]
    actions = ["preview_retention"]
    readonly_fields = ["created_at", "updated_at", "last_run_at", "last_run_ok", "last_run_summary"]
    fieldsets = [
        (None, {"fields": ["name", "enabled"]}),
        ("Keep", {"fields": ["keep_daily", "keep_weekly", "keep_monthly", "keep_last", "recovery_window_days"]}),
        ("Applies to", {"fields": ["database_alias", "kind", "tag"]}),
        ("Last run", {"fields": ["last_run_at", "last_run_ok", "last_run_summary", "created_at", "updated_at"]}),
    ]

    @admin.action(permissions=["view"], description="Preview: what retention would keep and delete (changes nothing)")
    def preview_retention(self, request, queryset):
        from dbops.services.backups.retention import retention_apply  # here, not at admin autodiscovery (start-up time)

        plans = []
        for policy in queryset:
            try:
                plan = retention_apply(policy=policy, dry_run=True).plan
            except DbopsError as exc:
                self.message_user(request, f"{policy.name}: {exc}", messages.ERROR)
                continue
            plans.append(plan)
            doomed = ", ".join(f"#{decision.backup.pk}" for decision in plan.delete) or "nothing"
            self.message_user(request, f"{policy.name}: keeps {len(plan.keep)}, would delete {doomed}.")
        # The message is the summary; the page lists every backup with its reason.
        context = {
            **self.admin_site.each_context(request),
            "title": "Retention preview (dry run: nothing is deleted)",
            "opts": self.model._meta,
            "plans": plans,
        }
        return TemplateResponse(request, "admin/dbops/retentionpolicy/preview.html", context)
