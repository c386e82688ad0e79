"""How import_data's set-based path (Connector.json_staging) reads one column from a record's JSON."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("integer", "boolean", "text", "datetime", "date", "json", "uuid", "ip", "float", "decimal")


@dataclass(frozen=True)
class JsonField:
    """One column as the set-based path reads it from the record's JSON."""

    column: str  # quoted
    key: str  # the field's name in the record
    kind: str  # one of KINDS
    null: bool
    max_length: int | None = None
    low: int | None = None
    high: int | None = None
    max_digits: int | None = None  # decimal: what the field's DecimalValidator allows
    decimal_places: int | None = None
    choices: tuple[str, ...] | None = None  # text choices: the value is one of them, or empty
    blank: bool = True  # text: whether the empty string is allowed (Django's blank=False says no)
    privileged: bool = False  # only false, null or absent passes; anything else takes the checking path
