"""PostgreSQL COPY text format for one value, shared by every bulk loader (seed_data, import_data)."""

from __future__ import annotations

from datetime import datetime

COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value) -> str:
    if type(value) is str:
        # Fast path in C: most text holds no backslash or control character, so nothing to escape.
        if "\\" not in value and value.isprintable():
            return value
        return value.translate(COPY_ESCAPES)
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):  # str subclasses (e.g. SafeString)
        return value.translate(COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
