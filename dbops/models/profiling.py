"""Slow SQL statements, aggregated by normalized statement; written in bulk by the query profiler."""

from __future__ import annotations

from django.db import models


class SlowQuery(models.Model):
    fingerprint = models.CharField(max_length=40, unique=True, help_text="Hash of the normalized statement.")
    statement = models.TextField(help_text="Normalized statement: literals and IN lists collapsed.")
    sample_sql = models.TextField(help_text="The latest sample, parameters masked.")
    count = models.PositiveBigIntegerField(default=0, help_text="Slow executions seen.")
    total_ms = models.FloatField(default=0)
    max_ms = models.FloatField(default=0)
    last_ms = models.FloatField(default=0)
    call_site = models.CharField(max_length=255, blank=True, help_text="file:line:function of the calling code.")
    source = models.CharField(max_length=255, blank=True, help_text="Route, GraphQL operation, task or command.")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-total_ms"]
        verbose_name = "slow query"
        verbose_name_plural = "slow queries"
        indexes = [models.Index(fields=["-total_ms"], name="slowquery_total_ms_idx")]

    def __str__(self) -> str:
        return f"{self.count}x max {self.max_ms:.0f} ms: {self.statement[:80]}"

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0
