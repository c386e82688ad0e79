"""How import_data reads one field: a strict converter that names what is wrong with a value (the
checking path), and a fast converter straight to COPY text (for engines with COPY, escaped with the
connector's `copy_escapes`) for values that are plainly right.

The fast converter only accepts values whose type is unambiguous (an int for an integer column, a
str within max_length for text, an ISO string for a date-time…) and raises Bad for anything else;
the caller then runs the strict converter on that record, which gives the precise message. Whatever
the fast path lets through is still parsed by the database's own COPY input functions.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import models

from dbops.exceptions import DataMigrationError
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.formats import Unparsable

# Filled in on import when a file does not carry them (passwords are never exported): an unusable
# password like make_password(None) makes, without its 40 secrets.choice calls per user.
IMPORT_DEFAULTS: dict[tuple[str, str], Callable[[], object]] = {
    ("users", "password"): lambda: UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)
}
NULL = "\\N"


class Bad(ValueError):
    """A value that cannot go into its column; the message says why."""


# --- per-field converters: file value -> Python value ready for the staging table --------------------


def _integer_converter(model_field: models.Field) -> Callable:
    internal = model_field.get_internal_type() if not model_field.is_relation else "BigIntegerField"
    low, high = -(2**63), 2**63 - 1
    if internal in ("IntegerField", "AutoField", "PositiveIntegerField"):
        low, high = -(2**31), 2**31 - 1
    if internal.startswith("Positive") or internal in ("AutoField", "BigAutoField"):
        low = 0 if internal.startswith("Positive") else 1

    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Bad(f"expected an integer, got {value!r}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Bad(f"expected an integer, got {value!r}") from None
        if not low <= value <= high:
            raise Bad(f"{value} is out of range ({low}..{high})")
        return value

    return convert


_TRUE, _FALSE = {"true", "t", "1", "yes"}, {"false", "f", "0", "no"}


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Bad(f"expected true or false, got {value!r}")


def _text_converter(model_field: models.Field) -> Callable:
    max_length = model_field.max_length
    is_email = isinstance(model_field, models.EmailField)

    def convert(value):
        if not isinstance(value, str):
            raise Bad(f"expected text, got {type(value).__name__} {value!r}")
        if max_length and len(value) > max_length:
            raise Bad(f"longer than {max_length} characters ({len(value)})")
        if "\x00" in value:
            raise Bad("contains a NUL character")
        if is_email and value and "@" not in value:
            raise Bad(f"{value!r} is not an email address")
        return value

    return convert


def _datetime(value):
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Bad(f"expected an ISO 8601 date-time, got {value!r}") from None
    else:
        raise Bad(f"expected an ISO 8601 date-time, got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ip(value):
    try:
        return str(ipaddress.ip_address(value.strip() if isinstance(value, str) else value))
    except ValueError:
        raise Bad(f"{value!r} is not an IP address") from None


def _json(value):
    if isinstance(value, Unparsable):
        raise Bad(f"not valid JSON: {str(value)[:60]!r}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _converter(model_field: models.Field) -> Callable:
    if model_field.is_relation or isinstance(model_field, models.IntegerField | models.AutoField):
        return _integer_converter(model_field)
    if isinstance(model_field, models.BooleanField):
        return _boolean
    if isinstance(model_field, models.DateTimeField):
        return _datetime
    if isinstance(model_field, models.GenericIPAddressField):
        return _ip
    if isinstance(model_field, models.JSONField):
        return _json
    if isinstance(model_field, models.CharField | models.TextField):
        return _text_converter(model_field)
    raise DataMigrationError(f"import_data cannot read {model_field.get_internal_type()} fields yet")


@dataclass
class FieldSpec:
    name: str
    column: str
    convert: Callable
    null: bool
    default: Callable[[], object] | None  # None: the field is required
    fast: Callable[[object], str]  # to COPY text; raises Bad when the strict converter must judge


def field_specs(entity: Entity, now: datetime, *, copy_escapes: Mapping[int, str] | None) -> list[FieldSpec]:
    """How to read each field of the entity; without `copy_escapes` (no COPY) the fast path is off."""
    specs = []
    for model_field in entity.model._meta.concrete_fields:
        default: Callable[[], object] | None = None
        if (entity.name, model_field.name) in IMPORT_DEFAULTS:
            default = IMPORT_DEFAULTS[(entity.name, model_field.name)]
        elif model_field.has_default():
            default = model_field.get_default
        elif getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
            default = lambda now=now: now  # noqa: E731
        elif model_field.null:
            default = lambda: None  # noqa: E731
        elif model_field.blank and model_field.empty_strings_allowed:
            default = lambda: ""  # noqa: E731
        specs.append(
            FieldSpec(
                model_field.name,
                model_field.column,
                _converter(model_field),
                model_field.null,
                default,
                _fast(model_field, copy_escapes) if copy_escapes is not None else _never_fast,
            )
        )
    return specs


# --- fast converters: file value -> COPY text, or Bad ---------------------------------------------------

_IP_SHAPE = re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$")
_DIGITS = re.compile(r"^-?\d{1,18}$")


def _fast_integer(value) -> str:
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str and _DIGITS.match(value):
        return value
    raise Bad


def _fast_integer_or_null(value) -> str:  # the common nullable case without a wrapper call
    kind = type(value)
    if kind is int:
        return str(value)
    if value is None:
        return NULL
    if kind is str and _DIGITS.match(value):
        return value
    raise Bad


def _fast_boolean(value) -> str:
    if value is True:
        return "t"
    if value is False:
        return "f"
    if value in ("true", "false"):
        return value[0]
    raise Bad


def _never_fast(value) -> str:
    raise Bad


def _fast_text(max_length: int | None, escapes: Mapping[int, str]) -> Callable[[object], str]:
    limit = max_length or 1 << 62

    def convert(value) -> str:
        if type(value) is str and len(value) <= limit and "\x00" not in value:
            # Two C checks beat translate(): nearly no text holds a backslash or a control character.
            return value if "\\" not in value and value.isprintable() else value.translate(escapes)
        raise Bad

    return convert


def _fast_datetime(value) -> str:
    if type(value) is str:
        try:
            datetime.fromisoformat(value)  # PostgreSQL would also take 'yesterday'; a file should not
        except ValueError:
            raise Bad from None
        return value
    raise Bad


def _fast_ip(value) -> str:
    if type(value) is str and _IP_SHAPE.match(value):
        return value
    raise Bad


_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # json.dumps builds one per call


def _fast_json(escapes: Mapping[int, str]) -> Callable[[object], str]:
    def convert(value) -> str:
        if isinstance(value, Unparsable):
            raise Bad
        if type(value) is dict and not value:
            return "{}"
        text = _encode_json(value)  # JSON text has no raw control characters, only backslash escapes
        return text.translate(escapes) if "\\" in text else text

    return convert


def _fast(model_field: models.Field, escapes: Mapping[int, str]) -> Callable[[object], str]:
    if model_field.is_relation or isinstance(model_field, models.IntegerField | models.AutoField):
        convert = _fast_integer
    elif isinstance(model_field, models.BooleanField):
        convert = _fast_boolean
    elif isinstance(model_field, models.DateTimeField):
        convert = _fast_datetime
    elif isinstance(model_field, models.GenericIPAddressField):
        convert = _fast_ip
    elif isinstance(model_field, models.JSONField):
        convert = _fast_json(escapes)
    else:
        convert = _fast_text(model_field.max_length, escapes)
    if not model_field.null:
        return convert
    if convert is _fast_integer:
        return _fast_integer_or_null

    def nullable(value) -> str:
        return NULL if value is None else convert(value)

    return nullable
