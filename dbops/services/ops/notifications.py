"""Failure notifications for unattended jobs: always a log line, and a mail to ADMINS and
BACKUP_NOTIFY_EMAILS when any address is configured. The mail settings come from the EMAIL_*
settings; without a mail server the project can use dbops.mail.LogOnlyEmailBackend (only logs), and
EMAIL_TIMEOUT bounds how long a dead mail server can hold up the task that failed."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger("dbops.notifications")


def notify_recipients() -> list[str]:
    admins = [entry[1] if isinstance(entry, list | tuple) else entry for entry in getattr(settings, "ADMINS", [])]
    extra = list(getattr(settings, "BACKUP_NOTIFY_EMAILS", []) or [])
    return list(dict.fromkeys(admins + extra))  # de-duplicated, in order


def failure_notify(*, subject: str, body: str) -> bool:
    """Logs the failure and mails it; returns whether a mail was sent. A mail server that is down
    is logged, never raised: the notification must not hide the failure it reports."""
    logger.error("%s: %s", subject, body)
    recipients = notify_recipients()
    if not recipients:
        return False
    try:
        sent = send_mail(
            subject=f"{settings.EMAIL_SUBJECT_PREFIX}{subject}",
            message=body,
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:  # noqa: BLE001 (any mail transport error; logged with traceback)
        logger.exception("could not mail the failure notification to %s", ", ".join(recipients))
        return False
    return sent > 0
