"""Snapshots (taken before imports) in the admin: the list, and rollback through the same typed
confirmation page as a restore. The rollback itself is dbops.services.datamigration.snapshots.snapshot_rollback."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone

from dbops.admin.backup_display import human_age, human_size
from dbops.admin.confirm import (
    ConfirmationPage,
    TypedConfirmationForm,
    current_row_counts,
    render_confirmation,
    target_database,
)
from dbops.admin.readonly import ServiceWrittenAdmin
from dbops.exceptions import DbopsError
from dbops.models import DataTransferRun, Snapshot


# Read-only: snapshots are made by import_data / snapshot_create and removed by their own tools.
@admin.register(Snapshot)
class SnapshotAdmin(ServiceWrittenAdmin):
    change_form_template = "admin/dbops/snapshot/change_form.html"
    list_display = ["id", "created_at", "age", "status", "table_list", "rows", "size", "reason", "import_run"]
    list_filter = ["status", "database_alias", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["import_run"]
    search_fields = ["id", "reason"]
    date_hierarchy = "created_at"
    actions = ["rollback_selected"]

    def has_rollback_permission(self, request) -> bool:
        # As destructive as a restore, so the same permission (superusers hold it implicitly).
        return request.user.has_perm("dbops.restore_backup")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "has_rollback_permission": self.has_rollback_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="age", ordering="-created_at")
    def age(self, snapshot: Snapshot) -> str:
        return human_age(snapshot.created_at)

    @admin.display(description="tables")
    def table_list(self, snapshot: Snapshot) -> str:
        return ", ".join(snapshot.tables)

    @admin.display(description="rows")
    def rows(self, snapshot: Snapshot) -> int:
        return sum(int(count) for count in snapshot.row_counts.values())

    @admin.display(description="size", ordering="size_bytes")
    def size(self, snapshot: Snapshot) -> str:
        return human_size(snapshot.size_bytes)

    @admin.action(description="Roll back to this snapshot…", permissions=["rollback"])
    def rollback_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one snapshot to roll back to.", messages.WARNING)
            return None
        return HttpResponseRedirect(self._url("rollback", queryset.get().pk))

    def get_urls(self):
        return [
            path(
                "<path:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="dbops_snapshot_rollback",
            ),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args) -> str:
        # quote() as the admin's own links do: an id taken at 22:xx holds "_22", which unquotes to '"'.
        quoted = [quote(arg) for arg in args]
        return reverse(f"admin:dbops_snapshot_{name}", args=quoted, current_app=self.admin_site.name)

    def rollback_view(self, request, object_id):
        if not self.has_rollback_permission(request):
            raise PermissionDenied
        snapshot = self.get_object(request, unquote(object_id))
        if snapshot is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        alias = snapshot.database_alias if snapshot.database_alias in connections else DEFAULT_DB_ALIAS
        page = self._rollback_page(snapshot, alias)
        form = TypedConfirmationForm(
            request.POST if request.method == "POST" else None, expected_name=page.target.confirmation_name
        )
        if request.method == "POST" and form.is_valid():
            return self._run_rollback(request, snapshot, alias)
        return render_confirmation(request, self, snapshot, page, form)

    def _run_rollback(self, request, snapshot: Snapshot, alias: str):
        from dbops.services.datamigration.snapshots import snapshot_rollback

        try:
            result = snapshot_rollback(snapshot_id=snapshot.pk, using=alias)
        except DbopsError as exc:
            self.message_user(request, f"Rollback to {snapshot.pk} failed: {exc}", messages.ERROR)
        else:
            restored = ", ".join(f"{table} ({result.row_counts.get(table, 0)} rows)" for table in result.tables)
            self.message_user(
                request,
                f"Rolled back to {result.snapshot_id}: {restored}; table checksums match the snapshot.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._url("change", snapshot.pk))

    def _rollback_page(self, snapshot: Snapshot, alias: str) -> ConfirmationPage:
        target = target_database(alias)
        return ConfirmationPage(
            title="Roll back to a snapshot",
            action_label="Roll back",
            target=target,
            source_facts=[
                ("Snapshot", snapshot.pk),
                ("Taken at", f"{timezone.localtime(snapshot.created_at):%Y-%m-%d %H:%M:%S %Z}"),
                ("Age", human_age(snapshot.created_at)),
                ("Status", snapshot.get_status_display()),
                ("Reason", snapshot.reason or "—"),
                ("Size", human_size(snapshot.size_bytes)),
                ("Checksum", snapshot.checksum),
            ],
            overwritten=[
                f"Every row of table(s) {', '.join(snapshot.tables)} in database “{target.name}” is deleted and "
                "replaced by the snapshot's rows; their id sequences go back to where they were.",
                "Other tables are not touched. If rows elsewhere still point at rows the rollback removes, "
                "it refuses and nothing changes.",
            ],
            tables=sorted(snapshot.row_counts.items()),
            current_rows=current_row_counts(alias),
            source_noun="snapshot",
            safety_backup=False,
            safety_note="No safety backup is taken: the rollback runs in one transaction and is only committed "
            "when every table's checksum equals the snapshot's.",
            cancel_url=self._url("change", snapshot.pk),
        )


@admin.register(DataTransferRun)
class DataTransferRunAdmin(ServiceWrittenAdmin):
    """Export and import runs: their status rows, read-only."""

    change_list_template = "admin/dbops/datatransferrun/change_list.html"
    list_display = ["id", "kind", "status", "format", "started_at", "duration_seconds", "size", "path"]
    list_filter = ["kind", "status", "format"]
    search_fields = ["path", "error"]

    def get_urls(self):
        from dbops.admin.imports import import_view

        view = self.admin_site.admin_view(lambda request: import_view(self, request))
        return [path("import/", view, name="dbops_datatransferrun_import"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        from dbops.admin.imports import has_import_permission

        extra_context = {**(extra_context or {}), "has_import_permission": has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, run: DataTransferRun) -> str:
        return human_size(run.size_bytes)
