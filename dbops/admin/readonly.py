"""The base of every admin over rows that only the services write (catalogs, status rows, history)."""

from __future__ import annotations

from django.contrib import admin


class ServiceWrittenAdmin(admin.ModelAdmin):
    """Viewable, never added or edited by hand: a hand-made row would not match its artifact or run.

    Deleting is off too (the services delete, e.g. backup_delete removes the artifact with the row),
    unless `deletable` says these rows are plain history that staff may prune."""

    deletable = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.deletable and super().has_delete_permission(request, obj)
