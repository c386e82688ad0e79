"""The MultiPULT domain: users with roles, concepts, dictionaries, files and audit logs.

Files and audit logs point at "any entity" through (entity_type, entity_id): a plain label and id
rather than a ContentType foreign key, so exports stay portable between databases.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.Model):
    name = models.CharField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    phone = models.CharField(max_length=32, blank=True)
    roles = models.ManyToManyField(Role, related_name="users", blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        indexes = [
            # "Active users, newest first" (admin list, API default ordering).
            models.Index(fields=["is_active", "-date_joined"], name="user_active_joined_idx"),
        ]


class Concept(models.Model):
    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    # No single-column index: concept_creator_created_idx leads with created_by and serves those lookups.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="concepts",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        indexes = [
            # "Concepts a user created, newest first".
            models.Index(fields=["created_by", "-created_at"], name="concept_creator_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"


class Dictionary(models.Model):
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="dictionaries"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "dictionaries"
        constraints = [models.UniqueConstraint(fields=["name"], name="dictionary_name_uniq")]

    def __str__(self) -> str:
        return self.name


class DictionaryEntry(models.Model):
    # No single-column index: dictionary_entry_key_uniq leads with dictionary and serves those lookups.
    dictionary = models.ForeignKey(Dictionary, on_delete=models.CASCADE, related_name="entries", db_index=False)
    key = models.CharField(max_length=255)
    value = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["dictionary_id", "position", "key"]
        verbose_name_plural = "dictionary entries"
        constraints = [models.UniqueConstraint(fields=["dictionary", "key"], name="dictionary_entry_key_uniq")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class StoredFile(models.Model):
    """Metadata of a stored file attached to any entity."""

    name = models.CharField(max_length=255)
    storage_path = models.CharField(max_length=1024)
    content_type = models.CharField(max_length=127, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    entity_type = models.CharField(max_length=64)
    entity_id = models.PositiveBigIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="files"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "file"
        indexes = [
            # "Files of this entity".
            models.Index(fields=["entity_type", "entity_id"], name="file_entity_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class AuditLog(models.Model):
    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        LOGIN = "login"
        EXPORT = "export"
        IMPORT = "import"
        BACKUP = "backup"
        RESTORE = "restore"

    # No single-column index: audit_actor_time_idx leads with actor and serves those lookups.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_logs",
        db_index=False,
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    entity_type = models.CharField(max_length=64)
    entity_id = models.PositiveBigIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField(db_index=False)
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [
            # "History of this entity, newest first".
            models.Index(fields=["entity_type", "entity_id", "-timestamp"], name="audit_entity_time_idx"),
            # "What this user did, newest first".
            models.Index(fields=["actor", "-timestamp"], name="audit_actor_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M} {self.action} {self.entity_type}#{self.entity_id}"


class ApiToken(models.Model):
    """A bearer token for API clients: only its SHA-256 is stored, the token itself is shown once.

    The prefix (the token's first characters) finds the row; the digest is compared in constant time.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the client's name.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"
