"""BackupRecord in the admin: the catalog, "Back up now", "Verify (restore test)" and the typed
restore confirmation. Each action parses the request, calls one service (or enqueues one task) and
presents the outcome; the work itself lives in dbops.services."""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from dbops.admin.backup_display import (
    STATUS_COLOURS,
    TAG_SHOWN_CHARACTERS,
    StatusListFilter,
    human_age,
    human_size,
    restore_outcome,
    verification_outcome,
)
from dbops.admin.confirm import TypedConfirmationForm, render_confirmation
from dbops.admin.dashboard import dashboard_view
from dbops.admin.pinning import PinActionsMixin
from dbops.admin.readonly import ServiceWrittenAdmin
from dbops.admin.restore_page import keep_signed_in, restore_confirmation_page
from dbops.admin.table_restore import table_restore_view
from dbops.exceptions import DbopsError, QueueUnavailable
from dbops.models import BackupRecord, TaskRun


# Read-only: retention and the services delete through backup_delete, which removes the artifact too.
@admin.register(BackupRecord)
class BackupRecordAdmin(PinActionsMixin, ServiceWrittenAdmin):
    change_list_template = "admin/dbops/backuprecord/change_list.html"
    change_form_template = "admin/dbops/backuprecord/change_form.html"
    # What a person acts on; the rest (format, compression, encryption, trigger...) is on the record's page.
    list_display = [
        "id",
        "status_and_error",
        "when",
        "age",
        "database_alias",
        "size",
        "where",
        "verified",
        "short_tag",
        "pinned",
    ]
    list_display_links = ["id", "status_and_error"]
    list_filter = [
        StatusListFilter,
        "pinned",
        "kind",
        "verification_status",
        "local_presence",
        "s3_presence",
        "compression",
        "encrypted",
        "triggered_by",
        "engine",
        ("started_at", admin.DateFieldListFilter),
    ]
    search_fields = ["tag", "database_name", "sha256", "storage_name", "triggered_by_user"]
    date_hierarchy = "started_at"
    list_per_page = 50
    actions = ["backup_now", "verify_restore_test", "restore_selected", "pin_selected", "unpin_selected"]
    fieldsets = [
        (None, {"fields": ["status_badge", "kind", "tag", "pinned", "error_block"]}),
        (
            "Artifact",
            {
                "fields": [
                    "size",
                    "sha256",
                    "format",
                    "compression",
                    "encrypted",
                    "encryption_key_id",
                    "storage_name",
                    "location",
                    "local_presence",
                    "s3_presence",
                    "uploaded_to_s3",
                    "s3_key",
                    "upload_error",
                ]
            },
        ),
        (
            "Source database",
            {"fields": ["engine", "database_alias", "database_name", "server_version", "tool_version"]},
        ),
        ("Contents", {"fields": ["row_counts_table", "migration_state"]}),
        (
            "Run",
            {
                "fields": [
                    "started_at",
                    "finished_at",
                    "duration_seconds",
                    "heartbeat_at",
                    "hostname",
                    "pid",
                    "triggered_by",
                    "triggered_by_user",
                ]
            },
        ),
        ("Verification", {"fields": ["verification_status", "verified_at", "verification_details", "deleted_at"]}),
        ("Restores from this backup", {"fields": ["restore_log"]}),
    ]

    def has_backup_permission(self, request) -> bool:
        return request.user.has_perm("dbops.add_backuprecord")

    def has_verify_permission(self, request) -> bool:
        return request.user.has_perm("dbops.change_backuprecord")

    def has_restore_permission(self, request) -> bool:
        # Superusers hold every permission, so this is "superuser or dbops.restore_backup".
        return request.user.is_active and request.user.has_perm("dbops.restore_backup")

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "has_backup_permission": self.has_backup_permission(request),
            "has_table_restore": self.has_restore_permission(request)
            and BackupRecord.objects.filter(kind=BackupRecord.Kind.BASE).exists(),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "has_restore_permission": self.has_restore_permission(request),
            "has_verify_permission": self.has_verify_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request, obj=None):
        shown = ["status_badge", "size", "error_block", "row_counts_table", "restore_log"]
        return [field.name for field in self.model._meta.fields] + shown

    # --- columns -------------------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, backup_record: BackupRecord):
        colour = STATUS_COLOURS.get(backup_record.status, "#333")
        return format_html(
            '<strong class="backup-status backup-status-{}" style="color:{}">{}</strong>',
            backup_record.status,
            colour,
            backup_record.get_status_display(),
        )

    @admin.display(description="status", ordering="status")
    def status_and_error(self, backup_record: BackupRecord):
        """The status, and for a failed backup the first line of its error (the whole error as tooltip)."""
        badge = self.status_badge(backup_record)
        problem = backup_record.error or backup_record.upload_error
        if not problem:
            return badge
        first_line = problem.strip().splitlines()[0] if problem.strip() else problem
        return format_html(
            '{}<div class="backup-list-error" title="{}">{}</div>',
            badge,
            problem,
            first_line if len(first_line) <= 90 else first_line[:89] + "…",
        )

    @admin.display(description="started", ordering="started_at")
    def when(self, backup_record: BackupRecord):
        # date over time, in the server's zone: narrow enough for every key column at 1400 px
        started = timezone.localtime(backup_record.started_at)
        return format_html('<span class="backup-when">{}<br>{}</span>', f"{started:%Y-%m-%d}", f"{started:%H:%M}")

    @admin.display(description="where", ordering="local_presence")
    def where(self, backup_record: BackupRecord) -> str:
        return backup_record.places()

    @admin.display(description="tag", ordering="tag")
    def short_tag(self, backup_record: BackupRecord):
        tag = backup_record.tag
        if len(tag) <= TAG_SHOWN_CHARACTERS:
            return tag or "—"
        return format_html('<span title="{}">{}…</span>', tag, tag[: TAG_SHOWN_CHARACTERS - 1])

    @admin.display(description="size", ordering="size_bytes")
    def size(self, backup_record: BackupRecord) -> str:
        return human_size(backup_record.size_bytes)

    @admin.display(description="age", ordering="-started_at")
    def age(self, backup_record: BackupRecord) -> str:
        return human_age(backup_record.finished_at or backup_record.started_at)

    @admin.display(description="verified", boolean=True, ordering="verification_status")
    def verified(self, backup_record: BackupRecord) -> bool | None:
        status = BackupRecord.VerificationStatus
        if backup_record.verification_status in (status.NEVER, status.KEY_UNAVAILABLE):  # unknown, not failed
            return None
        return backup_record.verification_status == BackupRecord.VerificationStatus.PASSED

    @admin.display(description="error / log")
    def error_block(self, backup_record: BackupRecord):
        if not backup_record.error:
            return "—"
        return format_html('<pre class="backup-error" style="white-space:pre-wrap">{}</pre>', backup_record.error)

    @admin.display(description="row counts")
    def row_counts_table(self, backup_record: BackupRecord):
        if not backup_record.row_counts:
            return "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td style='text-align:right'>{}</td></tr>", sorted(backup_record.row_counts.items())
        )
        return format_html('<table class="row-counts"><tr><th>table</th><th>rows</th></tr>{}</table>', rows)

    @admin.display(description="restores")
    def restore_log(self, backup_record: BackupRecord):
        # backup_restore writes one RestoreRecord per restore (running, then succeeded or failed).
        restore_records = backup_record.restores.order_by("-started_at", "-id")[:20]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{timezone.localtime(restore_record.started_at):%Y-%m-%d %H:%M:%S}",
                    restore_record.get_status_display()
                    + (f": {restore_record.error.splitlines()[0]}" if restore_record.error else ""),
                    f"{restore_record.triggered_by_user or '—'} ({restore_record.triggered_by})",
                    restore_record.database_name,
                    f"#{restore_record.safety_backup_id}" if restore_record.safety_backup_id else "none",
                    restore_record.previous_database or "—",
                )
                for restore_record in restore_records
            ),
        )
        if not rows:
            return "never restored"
        return format_html(
            '<table class="restore-log"><tr><th>when</th><th>outcome</th><th>by</th><th>database</th>'
            "<th>safety backup</th><th>previous database kept as</th></tr>{}</table>",
            rows,
        )

    # --- actions -------------------------------------------------------------------------------

    @admin.action(description="Back up now", permissions=["backup"])
    def backup_now(self, request, queryset=None):
        from dbops.queue import backup_enqueue

        try:
            queued = backup_enqueue(
                triggered_by=BackupRecord.Trigger.ADMIN, triggered_by_user=request.user.get_username()
            )
        except QueueUnavailable as exc:
            self.message_user(request, f"Could not queue the backup: {exc}", messages.ERROR)
            return
        except DbopsError as exc:  # in-process only: the backup itself failed
            self.message_user(request, f"The backup failed: {exc}", messages.ERROR)
            return
        if queued.ran_in_process:
            self.message_user(request, "Backup finished; it is the newest row of the list.", messages.SUCCESS)
        else:
            self.message_user(request, "Backup queued; it appears in this list as running, then succeeded or failed.")

    @admin.action(description="Verify (restore test)", permissions=["verify"])
    def verify_restore_test(self, request, queryset):
        for backup_record in queryset:
            self._queue_verification(request, backup_record)

    def _queue_verification(self, request, backup_record: BackupRecord) -> None:
        """A restore test takes minutes on a big database: it runs in a worker, never in the request.
        In-process (REDIS_HOST unset) it has run by the time the call returns, so the outcome is shown."""
        from dbops.queue import verify_enqueue

        verified_before = backup_record.verified_at
        try:
            queued = verify_enqueue(backup_record=backup_record, requested_by=request.user.get_username())
        except QueueUnavailable as exc:
            message = f"Backup #{backup_record.pk}: could not queue the verification: {exc}"
            self.message_user(request, message, messages.ERROR)
            return
        except DbopsError as exc:  # refused, or (in-process) it ran and failed: its outcome may be recorded
            backup_record.refresh_from_db()
            if backup_record.verified_at == verified_before:  # refused, or never got as far as an outcome
                self.message_user(request, f"Backup #{backup_record.pk}: not verified: {exc}", messages.ERROR)
                return
            queued = None
        if queued is not None and not queued.ran_in_process:
            self.message_user(request, self._queued_message(f"Backup #{backup_record.pk}: verification", queued))
            return
        backup_record.refresh_from_db()
        self.message_user(request, *verification_outcome(backup_record))

    def _queued_message(self, what: str, queued):
        task_runs = reverse("admin:dbops_taskrun_changelist", current_app=self.admin_site.name)
        return format_html(
            '{} queued as task {}. The result will show on the record and in <a href="{}?q={}">Task runs</a>.',
            what,
            queued.task_id,
            task_runs,
            queued.task_id,
        )

    @admin.action(description="Restore the database from this backup…", permissions=["restore"])
    def restore_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one backup to restore from.", messages.WARNING)
            return None
        return HttpResponseRedirect(self._url("restore", queryset.get().pk))

    # --- extra views ---------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("backup-now/", wrap(self.backup_now_view), name="dbops_backuprecord_backup_now"),
            path("dashboard/", wrap(partial(dashboard_view, self)), name="dbops_dashboard"),
            path("restore-table/", wrap(partial(table_restore_view, self)), name="dbops_backuprecord_table_restore"),
            path("<path:object_id>/restore/", wrap(self.restore_view), name="dbops_backuprecord_restore"),
            path("<path:object_id>/verify/", wrap(self.verify_view), name="dbops_backuprecord_verify"),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args) -> str:
        return reverse(f"admin:dbops_backuprecord_{name}", args=args, current_app=self.admin_site.name)

    def backup_now_view(self, request):
        """The changelist's "Back up now" button: the same action, without needing a selection."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_backup_permission(request):
            raise PermissionDenied
        self.backup_now(request)
        return HttpResponseRedirect(self._url("changelist"))

    def verify_view(self, request, object_id):
        """The record page's "Verify (restore test)" button: the same action for this one record."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_verify_permission(request):
            raise PermissionDenied
        backup_record = self.get_object(request, unquote(object_id))
        if backup_record is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        self._queue_verification(request, backup_record)
        return HttpResponseRedirect(self._url("change", backup_record.pk))

    def restore_view(self, request, object_id):
        if not self.has_restore_permission(request):
            raise PermissionDenied
        backup_record = self.get_object(request, unquote(object_id))
        if backup_record is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        alias = backup_record.database_alias if backup_record.database_alias in connections else DEFAULT_DB_ALIAS
        page = restore_confirmation_page(backup_record, alias, cancel_url=self._url("change", backup_record.pk))
        form = TypedConfirmationForm(
            request.POST if request.method == "POST" else None, expected_name=page.target.confirmation_name
        )
        if request.method == "POST" and not page.blocking_problem and form.is_valid():
            return self._run_restore(request, backup_record, alias)
        return render_confirmation(request, self, backup_record, page, form)

    def _run_restore(self, request, backup_record: BackupRecord, alias: str):
        """The confirmed restore runs in a worker (it can take longer than any request may); in-process
        (REDIS_HOST unset) it has run when restore_enqueue returns, and its outcome is shown."""
        from dbops.queue import restore_enqueue

        try:
            queued = restore_enqueue(backup_record=backup_record, requested_by=request.user.get_username())
        except DbopsError as exc:
            self.message_user(request, f"Restore from backup #{backup_record.pk} failed: {exc}", messages.ERROR)
            return HttpResponseRedirect(self._url("change", backup_record.pk))
        if not queued.ran_in_process:
            what = f"Restore of database {backup_record.database_name} from backup #{backup_record.pk}"
            self.message_user(request, self._queued_message(what, queued))
            return HttpResponseRedirect(self._url("change", backup_record.pk))
        keep_signed_in(request)
        outcome = TaskRun.objects.get(task_id=queued.task_id).result
        self.message_user(request, restore_outcome(outcome), messages.SUCCESS)
        for warning in outcome.get("warnings", []):
            self.message_user(request, warning, messages.WARNING)
        if BackupRecord.objects.filter(pk=backup_record.pk).exists():
            return HttpResponseRedirect(self._url("change", backup_record.pk))
        return HttpResponseRedirect(self._url("changelist"))
