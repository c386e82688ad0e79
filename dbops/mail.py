"""The mail backend used when EMAIL_HOST is unset: nothing goes over the network.

The notification itself is already logged by dbops.services.ops.notifications; this backend adds one
line saying the mail was not sent and why, and reports zero messages sent."""

from __future__ import annotations

import logging

from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger("dbops.mail")


class LogOnlyEmailBackend(BaseEmailBackend):
    """Sends nothing and never opens a connection; logs subject and recipients of each message."""

    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            logger.info(
                "mail not sent (EMAIL_HOST is unset): %r to %s", message.subject, ", ".join(message.recipients())
            )
        return 0
