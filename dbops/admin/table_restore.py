"""The admin page of `pitr restore-table`: one table's rows as of a past moment, for superusers (or holders
of dbops.restore_backup) with a typed confirmation. The page asks for the table, the moment and an
optional new name, shows the checked plan (which base backup, how many rows are replaced), and queues
the restore only once the operator has typed the name of the table that is written. The work is
dbops.services.pitr.table_restore.pitr_table_restore, the same as the command's."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from dbops.exceptions import DbopsError
from dbops.models import BackupRecord


def _postgresql_aliases() -> list[str]:
    """The application databases PITR can recover (PostgreSQL; never the operations database)."""
    from dbops.conf import operations_alias

    return [
        alias
        for alias, database in settings.DATABASES.items()
        if "postgresql" in database["ENGINE"] and alias != operations_alias()
    ]


class TableRestoreForm(forms.Form):
    database = forms.ChoiceField(label="Database (alias)")
    table = forms.CharField(
        max_length=63,
        strip=True,
        help_text="A table of the public schema; its rows as of the moment replace its current rows.",
    )
    target_time = forms.DateTimeField(
        label="As of",
        help_text="e.g. 2026-01-27 12:00:00+00:00 (without an offset: the server's time zone).",
    )
    into = forms.CharField(
        label="Into a new table",
        max_length=63,
        required=False,
        strip=True,
        help_text="Optional: write the rows into this new table and leave the table as it is.",
    )
    typed_name = forms.CharField(
        label="Type the name of the table that is written to confirm",
        max_length=63,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "size": 40}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        aliases = _postgresql_aliases()
        self.fields["database"].choices = [(alias, alias) for alias in aliases]
        self.fields["database"].initial = DEFAULT_DB_ALIAS if DEFAULT_DB_ALIAS in aliases else None


def _restorable_since() -> BackupRecord | None:
    """The oldest usable base backup: no moment before it finished can be restored."""
    from dbops.services.pitr.recovery import usable_base_backups

    return usable_base_backups().order_by("finished_at").first()


def table_restore_view(model_admin, request):
    # Imported here: this module is loaded at admin autodiscovery, i.e. by every management command.
    from dbops.queue import table_restore_enqueue
    from dbops.services.pitr.table_restore import table_restore_plan

    if not model_admin.has_restore_permission(request):
        raise PermissionDenied
    changelist = reverse("admin:dbops_backuprecord_changelist", current_app=model_admin.admin_site.name)
    form = TableRestoreForm(request.POST if request.method == "POST" else None)
    plan = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            plan = table_restore_plan(
                table=data["table"],
                target_time=data["target_time"],
                into=data["into"],
                database=data["database"],
            )
        except DbopsError as exc:
            form.add_error(None, str(exc))
        if plan is not None and data["typed_name"] == plan.written_table:
            try:
                queued = table_restore_enqueue(plan=plan, requested_by=request.user.get_username())
            except DbopsError as exc:
                model_admin.message_user(request, f"Table restore not started: {exc}", messages.ERROR)
                return HttpResponseRedirect(changelist)
            model_admin.message_user(request, _started_message(plan, queued), messages.SUCCESS)
            return HttpResponseRedirect(changelist)
        if plan is not None and data["typed_name"]:
            form.add_error(
                "typed_name", f"That is not the table that is written. Type {plan.written_table} exactly, or go back."
            )
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Restore one table as of a moment",
        "opts": opts,
        "form": form,
        "plan": plan,
        "restorable_since": _restorable_since(),
        "cancel_url": changelist,
    }
    return TemplateResponse(request, "admin/dbops/table_restore.html", context)


def _started_message(plan, queued) -> str:
    from dbops.models import TaskRun

    what = f"Table {plan.written_table} as of {timezone.localtime(plan.target_time):%Y-%m-%d %H:%M:%S %Z}"
    if not queued.ran_in_process:
        return f"{what}: queued as task {queued.task_id}; the outcome shows in Task runs."
    outcome = TaskRun.objects.get(task_id=queued.task_id).result or {}
    return (
        f"{what}: {outcome.get('rows', 0):,} rows written from base backup #{outcome.get('base_backup_id')} "
        f"(WAL replayed to {outcome.get('replayed_to_lsn')})."
    )
