"""The restore confirmation page of a backup (what is overwritten, the backup's facts, per table its row
count beside the database's now, or why the restore is refused), and keeping the operator signed in
after the restore replaced the sessions table."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.utils import timezone

from dbops.admin.backup_display import human_age, human_size
from dbops.admin.confirm import ConfirmationPage, current_row_counts, target_database
from dbops.models import BackupRecord


def keep_signed_in(request) -> None:
    """The restored database holds the sessions of the backup's time, not this one. Store this
    session again when the operator's account exists there; otherwise end it cleanly (the next
    page asks them to log in) instead of failing to save a session that is gone."""
    user = get_user_model()._default_manager.filter(pk=request.user.pk, is_active=True, is_staff=True).first()
    if user is None:
        request.session.flush()
        return
    request.session.cycle_key()  # writes the session under a new key into the restored database
    auth_login(request, user, backend=getattr(request.user, "backend", None))


def restore_confirmation_page(backup_record: BackupRecord, alias: str, *, cancel_url: str) -> ConfirmationPage:
    from dbops.services.backups.restore import restore_plan, restore_refusal

    target = target_database(alias)
    blocking = restore_refusal(backup_record=backup_record, database=alias)
    total_rows = sum(int(count) for count in (backup_record.row_counts or {}).values())
    # A refused restore shows why and what the backup holds, never a plan that will not run.
    overwritten = (
        []
        if blocking
        else [
            f"Every table of database “{target.name}” ({target.engine}"
            + (f" on {target.host}" if target.host else "")
            + ") is replaced by the backup's contents.",
            "Rows written since the backup was taken are lost (they stay in the safety backup).",
            restore_plan(backup_record=backup_record, database=alias, safety_backup=True).describe(),
        ]
    )
    return ConfirmationPage(
        title="Restore the database from a backup",
        action_label="Restore the database",
        target=target,
        source_facts=[
            ("Backup", f"#{backup_record.pk} ({backup_record.get_kind_display()})"),
            ("Taken at", f"{timezone.localtime(backup_record.started_at):%Y-%m-%d %H:%M:%S %Z}"),
            ("Age", human_age(backup_record.finished_at or backup_record.started_at)),
            ("Size", human_size(backup_record.size_bytes)),
            ("Format / compression", f"{backup_record.format} / {backup_record.compression}"),
            ("Source database", f"{backup_record.database_name} ({backup_record.engine})"),
            ("SHA-256", backup_record.sha256 or "—"),
            ("Tables / rows", f"{len(backup_record.row_counts or {})} tables, {total_rows} rows"),
            ("Tag", backup_record.tag or "—"),
        ],
        overwritten=overwritten,
        tables=sorted((backup_record.row_counts or {}).items()),
        current_rows={} if blocking else current_row_counts(alias),
        safety_backup=not blocking,
        blocking_problem=blocking,
        cancel_url=cancel_url,
    )
