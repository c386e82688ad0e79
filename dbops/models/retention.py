"""Retention policies: which backups grandfather-father-son retention keeps, per database/kind/tag."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models

from dbops.models.backups import BackupRecord


class RetentionPolicy(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    enabled = models.BooleanField(default=True, help_text="Disabled policies are skipped by scheduled retention runs.")
    keep_daily = models.PositiveIntegerField(
        default=7,
        validators=[MaxValueValidator(3660)],
        help_text="Newest successful backup of each of the last N days.",
    )
    keep_weekly = models.PositiveIntegerField(
        default=4,
        validators=[MaxValueValidator(520)],
        help_text="Newest successful backup of each of the last N ISO weeks.",
    )
    keep_monthly = models.PositiveIntegerField(
        default=12,
        validators=[MaxValueValidator(1200)],
        help_text="Newest successful backup of each of the last N months.",
    )
    keep_last = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(10000)],
        help_text="Also keep the newest N successful backups.",
    )
    recovery_window_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(3660)],
        help_text="PITR base backups: recoverable to any point in the last N days (keeps the base backups, and the "
        "WAL after them, that needs), whatever the counts above.",
    )
    database_alias = models.CharField(
        max_length=64, blank=True, default="default", help_text="Database alias it applies to; blank: every database."
    )
    kind = models.CharField(
        max_length=16,
        choices=BackupRecord.Kind.choices,
        blank=True,
        default=BackupRecord.Kind.FULL,
        help_text="Backup kind it applies to; blank: every kind (each kind is kept separately).",
    )
    tag = models.CharField(max_length=64, blank=True, help_text="Only backups with this tag; blank: any tag.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The outcome of the last applied (not dry-run) run, written by retention_apply.
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_ok = models.BooleanField(null=True, blank=True)
    last_run_summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"{self.name} ({self.rules_display})"

    @property
    def rules_display(self) -> str:
        rules = f"daily {self.keep_daily}, weekly {self.keep_weekly}, monthly {self.keep_monthly}"
        rules += f", last {self.keep_last}" if self.keep_last else ""
        return rules + (f", recovery window {self.recovery_window_days} days" if self.recovery_window_days else "")

    def clean(self) -> None:
        if not (
            self.keep_daily or self.keep_weekly or self.keep_monthly or self.keep_last or self.recovery_window_days
        ):
            raise ValidationError(
                "A policy must keep something: set at least one of daily, weekly, monthly, last or a recovery window."
            )
        if self.recovery_window_days and self.kind not in ("", BackupRecord.Kind.BASE):
            raise ValidationError("A recovery window keeps PITR base backups: set the kind to base (or blank).")
