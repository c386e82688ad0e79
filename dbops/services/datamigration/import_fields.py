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
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.validators import DecimalValidator, MaxLengthValidator, ProhibitNullCharactersValidator
from django.db import models

from dbops.exceptions import DataMigrationError
from dbops.services.datamigration.entities import Entity
from dbops.services.datamigration.formats import Unparsable, encode_json

NULL = "\\N"


class Bad(ValueError):
    """A value that cannot go into its column; the message says why."""


def value_for_message(value, limit: int = 80) -> str:
    """repr(value) for a message, cut in the middle past `limit` characters: a 5,000-digit number or a
    megabyte of text would drown the line that names the record."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}…{text[-10:]} ({len(text):,} characters)"


# --- per-field converters: file value -> Python value ready for the staging table --------------------


def integer_range(model_field: models.Field) -> tuple[int, int]:
    """The values an integer column (or a foreign key, as a bigint) takes, as the checking path allows them."""
    internal = model_field.get_internal_type() if not model_field.is_relation else "BigIntegerField"
    low, high = -(2**63), 2**63 - 1
    if internal in ("IntegerField", "AutoField", "PositiveIntegerField"):
        low, high = -(2**31), 2**31 - 1
    if internal.startswith("Positive") or internal in ("AutoField", "BigAutoField"):
        low = 0 if internal.startswith("Positive") else 1
    return low, high


def _integer_converter(model_field: models.Field) -> Callable:
    low, high = integer_range(model_field)

    def convert(value):
        if isinstance(value, Decimal) and value.as_tuple().exponent == 0:  # an integer past int()'s limit
            raise Bad(f"{value_for_message(value)} is out of range ({low}..{high})")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Bad(f"expected an integer, got {value_for_message(value)}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                if re.fullmatch(r"[+-]?[0-9]+", value.strip()):  # past int()'s limit of 4,300 digits
                    raise Bad(f"{value_for_message(value)} is out of range ({low}..{high})") from None
                raise Bad(f"expected an integer, got {value_for_message(value)}") from None
        if not low <= value <= high:
            raise Bad(f"{value_for_message(value)} is out of range ({low}..{high})")
        return value

    return convert


TRUE_WORDS, _FALSE = frozenset({"true", "t", "1", "yes"}), frozenset({"false", "f", "0", "no"})


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | _FALSE:
        return value.strip().lower() in TRUE_WORDS
    raise Bad(f"expected true or false, got {value_for_message(value)}")


def _text_converter(model_field: models.Field) -> Callable:
    max_length, blank = model_field.max_length, model_field.blank

    def convert(value):
        if not isinstance(value, str):
            kind = "number" if isinstance(value, Decimal) else type(value).__name__  # not "JsonNumber"
            raise Bad(f"expected text, got {kind} {value_for_message(value)}")
        if not value and not blank:
            raise Bad("may not be blank (the model's blank=False)")
        if max_length and len(value) > max_length:
            raise Bad(f"longer than {max_length} characters ({len(value)})")
        if "\x00" in value:
            raise Bad("contains a NUL character")
        if _SURROGATE.search(value):
            raise Bad(_SURROGATE_MESSAGE)
        return value

    return convert


def _datetime(value):
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Bad(f"expected an ISO 8601 date-time, got {value_for_message(value)}") from None
    else:
        raise Bad(f"expected an ISO 8601 date-time, got {value_for_message(value)}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date(value):
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise Bad(f"expected an ISO 8601 date (YYYY-MM-DD), got {value_for_message(value)}")


def _float(value):
    if isinstance(value, float):  # NaN and Infinity, which JSON files spell as such, stay what they are
        return value
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise Bad(f"expected a number, got {value_for_message(value)}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise Bad(f"expected a number, got {value_for_message(value)}") from None
    except OverflowError:  # an integer past 1.8e308
        raise Bad(f"{value_for_message(value)} is out of the range of a float") from None
    if (number == 0 or math.isinf(number)) and _finite_non_zero(value):  # as PostgreSQL, never 0 or infinity
        raise Bad(f"{value_for_message(value)} is out of the range of a float")
    return number


def _finite_non_zero(value) -> bool:
    try:
        exact = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        return False
    return exact.is_finite() and exact != 0


def _decimal_converter(model_field: models.DecimalField) -> Callable:
    fits = DecimalValidator(model_field.max_digits, model_field.decimal_places)

    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise Bad(f"expected a decimal number, got {value_for_message(value)}")
        try:
            number = Decimal(value.strip() if isinstance(value, str) else str(value))
        except InvalidOperation:
            raise Bad(f"expected a decimal number, got {value_for_message(value)}") from None
        if not number.is_finite():
            raise Bad(f"expected a decimal number, got {value_for_message(value)}")
        try:
            fits(number)
        except ValidationError as exc:
            raise Bad(f"{value_for_message(value)}: {' '.join(exc.messages)}") from None
        return number

    return convert


def _uuid(value):
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value.strip())
        except ValueError:
            pass
    raise Bad(f"expected a UUID, got {value_for_message(value)}")


def _ip(value):
    try:
        address = ipaddress.ip_address(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise Bad(f"{value_for_message(value)} is not an IP address") from None
    if getattr(address, "scope_id", None):  # fe80::1%eth0: Python reads a zone, PostgreSQL's inet has none
        raise Bad(f"{value_for_message(value)} is not an IP address the database can store (it names a zone)")
    return str(address)


# What PostgreSQL cannot store and Python reads without complaint: a lone UTF-16 surrogate ("\ud800" in
# JSON) is no Unicode character, and jsonb refuses \u0000 (an escape not itself escaped).
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_MESSAGE = "holds a lone UTF-16 surrogate (as \\ud800 writes one), which is not a Unicode character"
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _json(value):
    if isinstance(value, Unparsable):
        raise Bad(f"not valid JSON: {str(value)[:60]!r}")
    try:
        text = encode_json(value)  # numbers as the file wrote them
    except RecursionError:
        raise Bad("JSON nested too deeply") from None
    if _JSON_NUL.search(text):
        raise Bad("holds a NUL character (\\u0000), which PostgreSQL's jsonb cannot store")
    if _SURROGATE.search(text):
        raise Bad(_SURROGATE_MESSAGE)
    return text


def _converter(model_field: models.Field) -> Callable:
    if model_field.is_relation or isinstance(model_field, models.IntegerField | models.AutoField):
        return _integer_converter(model_field)
    if isinstance(model_field, models.BooleanField):
        return _boolean
    if isinstance(model_field, models.DateTimeField):
        return _datetime
    if isinstance(model_field, models.DateField):  # after DateTimeField, its subclass
        return _date
    if isinstance(model_field, models.DecimalField):
        return _decimal_converter(model_field)
    if isinstance(model_field, models.FloatField):
        return _float
    if isinstance(model_field, models.UUIDField):
        return _uuid
    if isinstance(model_field, models.GenericIPAddressField):
        return _ip
    if isinstance(model_field, models.JSONField):
        return _json
    if isinstance(model_field, models.CharField | models.TextField):
        return _text_converter(model_field)
    raise DataMigrationError(f"import_data cannot read {model_field.get_internal_type()} fields yet")


# Checks the converters already make (lengths, NUL characters, digits) or the database makes (IP addresses).
_ALREADY_CHECKED = (MaxLengthValidator, ProhibitNullCharactersValidator, DecimalValidator)
_EMPTY = (None, "", [], (), {})


def value_validators(model_field: models.Field) -> list[Callable]:
    """The field's validators that neither the converters nor the database already apply."""
    validators = [] if isinstance(model_field, models.GenericIPAddressField) else model_field.default_validators
    return [v for v in (*validators, *model_field._validators) if not isinstance(v, _ALREADY_CHECKED)]


def _value_check(model_field: models.Field) -> Callable[[object], None] | None:
    """The model's own rules for a value, as full_clean applies them: choices and the field's validators
    (an email address, a slug, a URL, a project's validator). None when the field has neither."""
    choices = frozenset(value for value, _ in model_field.flatchoices) if model_field.choices else None
    validators = value_validators(model_field)
    if choices is None and not validators:
        return None
    shown = ", ".join(sorted(map(str, choices or ())))[:200]

    def check(value) -> None:
        if value in _EMPTY:  # as Field.validate: empty values are the blank/null rules' business
            return
        if choices is not None and not _among(value, choices):
            raise Bad(f"{value_for_message(value)} is not one of the choices ({shown})")
        for validator in validators:
            try:
                validator(value)
            except ValidationError as exc:
                raise Bad(f"{value_for_message(value)}: {' '.join(exc.messages)}") from None

    return check


def _among(value, choices: frozenset) -> bool:
    try:
        return value in choices
    except TypeError:  # an unhashable JSON value is no choice
        return False


def _checked(convert: Callable, check: Callable[[object], None]) -> Callable:
    def convert_and_check(value):
        converted = convert(value)
        check(converted)
        return converted

    return convert_and_check


def _fast_and_checked(fast: Callable[[object], str], check: Callable[[object], None]) -> Callable[[object], str]:
    def convert(value) -> str:
        text = fast(value)
        check(value)  # the file's value: a "3" for an integer choice 3 goes the checking way, which converts first
        return text

    return convert


def unreadable_fields(entity: Entity) -> list[str]:
    """`field (Type)` for each field of the entity import_data has no converter for (the dbops.E111 check)."""
    found = []
    for model_field in entity.fields:
        try:
            _converter(model_field)
        except DataMigrationError:
            found.append(f"{model_field.name} ({model_field.get_internal_type()})")
    return found


@dataclass
class FieldSpec:
    name: str
    column: str
    convert: Callable
    null: bool
    default: Callable[[], object] | None  # None: the field is required
    fast: Callable[[object], str]  # to COPY text; raises Bad when the strict converter must judge
    model_field: models.Field | None = None
    check: Callable[[object], None] | None = None  # the model's choices and validators, on the file's value


def field_specs(entity: Entity, now: datetime, *, copy_escapes: Mapping[int, str] | None) -> list[FieldSpec]:
    """How to read each field of the entity; without `copy_escapes` (no COPY) the fast path is off."""
    specs = []
    for model_field in entity.model._meta.concrete_fields:
        default: Callable[[], object] | None = None
        if model_field.name in entity.import_defaults:  # never exported: the declaration says how to fill it
            default = entity.import_defaults[model_field.name]
        elif model_field.has_default():
            default = model_field.get_default
        elif getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
            default = lambda now=now: now  # noqa: E731
        elif model_field.null:
            default = lambda: None  # noqa: E731
        elif model_field.blank and model_field.empty_strings_allowed:
            default = lambda: ""  # noqa: E731
        convert = _converter(model_field)
        fast = _fast(model_field, copy_escapes) if copy_escapes is not None else _never_fast
        check = _value_check(model_field)
        if check is not None:
            convert = _checked(convert, check)
            fast = fast if fast is _never_fast else _fast_and_checked(fast, check)
        name, column = model_field.name, model_field.column
        specs.append(FieldSpec(name, column, convert, model_field.null, default, fast, model_field, check))
    return specs


# --- fast converters: file value -> COPY text, or Bad ---------------------------------------------------

# IPv4 octets without leading zeros (PostgreSQL reads 01.2.3.4 as 1.2.3.4, Python refuses it); IPv6 without
# a dotted part (an embedded IPv4 part goes the strict way).
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IP_SHAPE = re.compile(rf"^(?:{_OCTET}\.){{3}}{_OCTET}\Z|^[0-9A-Fa-f:]*:[0-9A-Fa-f:]*\Z", re.ASCII)
_DIGITS = re.compile(r"^-?\d{1,18}\Z", re.ASCII)  # \Z: $ would let a trailing newline into the COPY text


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


def _fast_text(max_length: int | None, escapes: Mapping[int, str], *, blank: bool) -> Callable[[object], str]:
    limit = max_length or 1 << 62

    def convert(value) -> str:
        if type(value) is str and len(value) <= limit and "\x00" not in value and (value or blank):
            # Two C checks beat translate(): nearly no text holds a backslash or a control character.
            if "\\" not in value and value.isprintable():
                return value
            if _SURROGATE.search(value):  # not printable, and perhaps no Unicode at all: the strict way tells
                raise Bad
            return value.translate(escapes)
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


def _fast_checked(strict: Callable) -> Callable[[object], str]:
    def convert(value) -> str:
        return str(strict(value))  # Bad propagates: the checking path then names the problem

    return convert


def _fast_ip(value) -> str:
    if type(value) is str and _IP_SHAPE.match(value):
        return value
    raise Bad


def _fast_json(escapes: Mapping[int, str]) -> Callable[[object], str]:
    def convert(value) -> str:
        if isinstance(value, Unparsable):
            raise Bad
        if type(value) is dict and not value:
            return "{}"
        try:
            text = encode_json(value)  # JSON text has no raw control characters, only backslash escapes
        except RecursionError:
            raise Bad from None
        if "\\" in text:
            if "\\u0000" in text:  # perhaps an escaped backslash before it: the strict way tells
                raise Bad
            text = text.translate(escapes)
        if not text.isascii() and not text.isprintable() and _SURROGATE.search(text):
            raise Bad
        return text

    return convert


def _fast(model_field: models.Field, escapes: Mapping[int, str]) -> Callable[[object], str]:
    if model_field.is_relation or isinstance(model_field, models.IntegerField | models.AutoField):
        convert = _fast_integer
    elif isinstance(model_field, models.BooleanField):
        convert = _fast_boolean
    elif isinstance(model_field, models.DateTimeField):
        convert = _fast_datetime
    elif isinstance(model_field, models.DateField | models.DecimalField | models.FloatField | models.UUIDField):
        convert = _fast_checked(_converter(model_field))  # less common types: the strict check, then its text
    elif isinstance(model_field, models.GenericIPAddressField):
        convert = _fast_ip
    elif isinstance(model_field, models.JSONField):
        convert = _fast_json(escapes)
    else:
        convert = _fast_text(model_field.max_length, escapes, blank=model_field.blank)
    if not model_field.null:
        return convert
    if convert is _fast_integer:
        return _fast_integer_or_null

    def nullable(value) -> str:
        return NULL if value is None else convert(value)

    return nullable
