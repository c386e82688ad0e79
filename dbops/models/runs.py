"""What every run row has (a restore, a scheduled-task delivery, an export or import): a status that
starts running and ends succeeded or failed, when it started and finished, and the error it ended with.
BackupRecord is not one: a backup also goes deleted and missing after its run."""

from __future__ import annotations

import os
import socket

from django.db import models


def owner_process_gone(*, hostname: str, pid: int | None) -> bool | None:
    """Whether the process that claimed a running row is gone: True or False when it ran on this host,
    None when only another host (or a heartbeat) could tell."""
    if hostname != socket.gethostname() or not pid:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


class RunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Run(models.Model):
    Status = RunStatus

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["-started_at", "-id"]
