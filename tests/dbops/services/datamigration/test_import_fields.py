"""import_data's converters for the field types a foreign project brings (MultiPULT's own models have no
date, decimal, float or UUID columns): good values convert, bad ones name what is wrong, and the fast
COPY path yields the same text the strict path would (pure logic on the real Django field classes)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import models

from dbops.services.datamigration.import_fields import Bad, _converter, _fast


def _fields():
    return {
        "date": models.DateField(name="born"),
        "decimal": models.DecimalField(name="price", max_digits=5, decimal_places=2),
        "float": models.FloatField(name="weight"),
        "uuid": models.UUIDField(name="token"),
    }


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("date", "1929-10-21", dt.date(1929, 10, 21)),
        ("date", dt.date(2000, 1, 2), dt.date(2000, 1, 2)),
        ("decimal", "15.50", Decimal("15.50")),
        ("decimal", 3, Decimal("3")),
        ("decimal", "999.99", Decimal("999.99")),
        ("float", 1.5, 1.5),
        ("float", "2", 2.0),
        ("uuid", "12345678-1234-5678-1234-567812345678", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ],
)
def test_good_values_convert_and_the_fast_path_agrees(kind, value, expected):
    field = _fields()[kind]
    assert _converter(field)(value) == expected
    assert _fast(field, {})(value) == str(expected)


@pytest.mark.parametrize(
    ("kind", "value", "says"),
    [
        ("date", "2026-02-30", "expected an ISO 8601 date"),
        ("date", "2026-01-05T10:00:00", "expected an ISO 8601 date"),
        ("date", 20260105, "expected an ISO 8601 date"),
        ("decimal", "1000.00", "no more than 5 digits"),
        ("decimal", "1.005", "no more than 2 decimal places"),
        ("decimal", "NaN", "expected a decimal number"),
        ("decimal", "ten", "expected a decimal number"),
        ("decimal", True, "expected a decimal number"),
        ("float", "heavy", "expected a number"),
        ("float", False, "expected a number"),
        ("uuid", "not-a-uuid", "expected a UUID"),
        ("uuid", 42, "expected a UUID"),
    ],
)
def test_bad_values_name_the_problem_on_both_paths(kind, value, says):
    field = _fields()[kind]
    with pytest.raises(Bad, match=says):
        _converter(field)(value)
    with pytest.raises(Bad):
        _fast(field, {})(value)


def test_a_nullable_field_takes_null_on_the_fast_path():
    field = models.DateField(name="born", null=True)
    assert _fast(field, {})(None) == "\\N"
