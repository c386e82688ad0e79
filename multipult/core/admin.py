from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from multipult.core.models import ApiToken, AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User
from multipult.core.services.tokens import api_token_revoke


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = DjangoUserAdmin.fieldsets + (("MultiPULT", {"fields": ("phone", "roles")}),)
    list_display = ["username", "email", "first_name", "last_name", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser", "roles"]
    filter_horizontal = ["roles", "groups", "user_permissions"]


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "created_by", "created_at"]
    search_fields = ["code", "name"]
    list_select_related = ["created_by"]
    raw_id_fields = ["created_by"]


class DictionaryEntryInline(admin.TabularInline):
    model = DictionaryEntry
    extra = 0


@admin.register(Dictionary)
class DictionaryAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name"]
    inlines = [DictionaryEntryInline]
    list_select_related = ["created_by"]
    raw_id_fields = ["created_by"]


@admin.register(DictionaryEntry)
class DictionaryEntryAdmin(admin.ModelAdmin):
    list_display = ["dictionary", "key", "value", "position"]
    search_fields = ["key", "value"]
    list_select_related = ["dictionary"]
    raw_id_fields = ["dictionary"]


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ["name", "entity_type", "entity_id", "size", "uploaded_by", "created_at"]
    list_filter = ["entity_type", "content_type"]
    search_fields = ["name", "storage_path"]
    list_select_related = ["uploaded_by"]
    raw_id_fields = ["uploaded_by"]


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "actor", "action", "entity_type", "entity_id"]
    list_filter = ["action", "entity_type"]
    date_hierarchy = "timestamp"
    list_select_related = ["actor"]
    raw_id_fields = ["actor"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made with `manage.py api_token create` (the secret is shown once); here: list and revoke."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(permissions=["change"], description="Revoke the selected API tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token_id=token.pk)
        self.message_user(request, f"Revoked {queryset.count()} API token(s).")
