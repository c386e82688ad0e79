"""How a backup record reads in the admin: sizes, ages, where its copies are, the list's status filter,
and the messages after a restore or a verification. Shared by the backup, snapshot and restore pages."""

from __future__ import annotations

from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy

from dbops.models import BackupRecord

STATUS_COLOURS = {
    BackupRecord.Status.SUCCEEDED: "#2e7d32",
    BackupRecord.Status.FAILED: "#c62828",
    BackupRecord.Status.RUNNING: "#1565c0",
    BackupRecord.Status.DELETED: "#757575",
    BackupRecord.Status.MISSING: "#ef6c00",
}
TAG_SHOWN_CHARACTERS = 24  # a tag may hold 64; the list column stays narrow, the full tag is its tooltip


def human_size(size_bytes: int | None) -> str:
    return "—" if size_bytes is None else filesizeformat(size_bytes)


def human_age(moment, now=None) -> str:
    if moment is None:
        return "—"
    return f"{timesince(moment, now or timezone.now(), depth=1)} ago"


class StatusListFilter(admin.SimpleListFilter):
    """Status, with deleted backups hidden until asked for: they are history, not something to act on."""

    title = gettext_lazy("status")
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request, model_admin):
        return [*BackupRecord.Status.choices, (self.ALL, "All, deleted too")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset.exclude(status=BackupRecord.Status.DELETED)
        if self.value() == self.ALL:
            return queryset
        return queryset.filter(status=self.value())

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All but deleted",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


def restore_outcome(outcome: dict) -> str:
    """One line for the message after a restore (the restore task's result): what was restored, where
    the old data went, which copy was used."""
    parts = [f"Restored {outcome['source']} into database {outcome['database']} in {outcome['seconds']:.1f} s."]
    if outcome.get("safety_backup_id"):
        parts.append(f"Safety backup #{outcome['safety_backup_id']} holds the data as it was before.")
    if outcome.get("previous_database"):
        parts.append(f"The previous database is kept as {outcome['previous_database']} until the next retention run.")
    if outcome.get("tables"):
        parts.append(f"Tables: {', '.join(outcome['tables'])}.")
    parts += outcome.get("notes", [])  # e.g. the local copy was damaged and the S3 copy was used
    return " ".join(parts)


def verification_outcome(backup_record: BackupRecord) -> tuple[str, int]:
    """The message (and its level) for a record's stored verification outcome."""
    details = backup_record.verification_details or {}
    warnings = " ".join(details.get("warnings") or [])
    if backup_record.verification_status == BackupRecord.VerificationStatus.PASSED:
        restored = (
            f"restored into a scratch database, {details.get('tables_checked', 0)} tables' row counts match"
            if details.get("restore_tested")
            else "no restore test"
        )
        copy = " of the S3 copy" if details.get("source") == "s3" else ""
        text = f"Backup #{backup_record.pk}: verification{copy} passed (checksum ok, {restored})."
        return (f"{text} {warnings}", messages.WARNING) if warnings else (text, messages.SUCCESS)
    problems = "; ".join(details.get("problems") or []) or "checksum mismatch"
    if backup_record.verification_status == BackupRecord.VerificationStatus.KEY_UNAVAILABLE:
        return f"Backup #{backup_record.pk}: checksum ok, not restorable here: {problems}", messages.WARNING
    return f"Backup #{backup_record.pk}: verification FAILED: {problems}", messages.ERROR
