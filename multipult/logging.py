"""Logging helpers shared by every part: one filter that keeps configured secrets out of logs."""

from __future__ import annotations

import logging
import os

from multipult.config import ENV_VARS

_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words


def _configured_secrets() -> list[str]:
    values = []
    for var in ENV_VARS:
        raw = os.environ.get(var.name) if var.secret else None
        if raw:  # a list (a key ring) is masked item by item as well as whole
            values += [raw, *(item.strip() for item in raw.split(","))] if var.type is list else [raw]
    return [value for value in values if value and len(value) >= _MIN_SECRET_LENGTH]


class SecretMaskingFilter(logging.Filter):
    """Replaces any configured secret value in a record's message and arguments with ********."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.secrets = _configured_secrets()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, "********")
        if masked != message:
            record.msg, record.args = masked, None
        return True
