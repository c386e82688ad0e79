"""Pin / Unpin actions of the backup admin: a pinned backup is never deleted until it is unpinned.
Who may: holders of dbops.change_backuprecord (as for Verify)."""

from __future__ import annotations

from django.contrib import admin, messages

from dbops.exceptions import DbopsError
from dbops.services.backups.pinning import backup_pin


class PinActionsMixin:
    def has_pin_permission(self, request) -> bool:
        return request.user.has_perm("dbops.change_backuprecord")

    @admin.action(description="Pin (never delete until unpinned)", permissions=["pin"])
    def pin_selected(self, request, queryset):
        self._pin(request, queryset, pinned=True)

    @admin.action(description="Unpin (retention decides again)", permissions=["pin"])
    def unpin_selected(self, request, queryset):
        self._pin(request, queryset, pinned=False)

    def _pin(self, request, queryset, *, pinned: bool) -> None:
        done = []
        for backup_record in queryset:
            try:
                backup_pin(backup_record=backup_record, pinned=pinned)
            except DbopsError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                done.append(f"#{backup_record.pk}")
        if done:
            self.message_user(request, f"{'Pinned' if pinned else 'Unpinned'} {', '.join(done)}.", messages.SUCCESS)
