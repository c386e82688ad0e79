"""import_data stores a number exactly as the file writes it, whichever way the file is read: the set-based
path (jsonl, checked and cast on the server from the raw JSON text) and the checking path (parsed in
Python: jsonl on an engine without it, json, csv). A number its field cannot hold exactly is refused,
naming entity, record and field, and nothing is written."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import connection, models, transaction
from django.test.utils import CaptureQueriesContext

from dbops.engines import get_connector
from dbops.exceptions import ImportValidationError
from dbops.services.datamigration.entities import ENTITIES
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from dbops.services.datamigration.set_based import set_based_stages
from tests.dbops.services.datamigration.helpers import EXPORT_HEADER

ENTITY = "core.FidelityMeasurement"
TABLE = "test_fidelity_measurement"
DECIMAL_PLACES = 2
# How each file is read: the set-based path, or the checking path (jsonl forced there, json and csv always).
READINGS = ["jsonl-set-based", "jsonl-checking", "json", "csv"]


@pytest.fixture
def measurement(db):
    """A model of the core app with a decimal, a float and a JSON field; its table lives in the test's
    transaction, and the model leaves the app registry afterwards (no other test sees it)."""
    meta = type("Meta", (), {"app_label": "core", "db_table": TABLE})
    model = type(
        "FidelityMeasurement",
        (models.Model,),
        {
            "__module__": "multipult.core.models",
            "Meta": meta,
            "amount": models.DecimalField(max_digits=20, decimal_places=DECIMAL_PLACES, null=True),
            "share": models.DecimalField(max_digits=2, decimal_places=2, null=True),  # no digit before the point
            "reading": models.FloatField(null=True),
            "details": models.JSONField(default=dict, blank=True),
            "count": models.BigIntegerField(null=True),
        },
    )
    ENTITIES.reset()
    try:
        with connection.schema_editor() as editor:
            editor.create_model(model)
        yield model
    finally:
        del apps.all_models["core"]["fidelitymeasurement"]
        apps.clear_cache()
        ENTITIES.reset()


def _write(tmp_path, fmt: str, field: str, literals: list[str]):
    """A file of records {id, field} whose values are these literals as written: JSON text for json and
    jsonl, the cell's text for csv."""
    bodies = [f'{{"id":{number},"{field}":{literal}}}' for number, literal in enumerate(literals, 1)]
    header = json.dumps(EXPORT_HEADER, separators=(",", ":"))
    if fmt == "jsonl":
        path = tmp_path / "numbers.jsonl"
        lines = [header, *(f'{{"entity":"{ENTITY}","data":{body}}}' for body in bodies)]
        lines.append(json.dumps({"end": True, "counts": {ENTITY: len(bodies)}}))
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "json":
        path = tmp_path / "numbers.json"
        path.write_text(header[:-1] + f',"entities":{{"{ENTITY}":[' + ",\n".join(bodies) + "]}}\n")
    else:
        path = tmp_path / "numbers"
        path.mkdir()
        manifest = {**EXPORT_HEADER, "entities": {ENTITY: {"file": "m.csv", "fields": ["id", field], "rows": 0}}}
        manifest["entities"][ENTITY]["rows"] = len(literals)
        (path / "manifest.json").write_text(json.dumps(manifest))
        cells = [f'{number},"{literal.replace(chr(34), chr(34) * 2)}"' for number, literal in enumerate(literals, 1)]
        (path / "m.csv").write_text("\n".join([f"id,{field}", *cells]) + "\n")
    return path


def _set_based_accepts(path) -> bool:
    """Whether the set-based path takes the file, its values checked and cast on the server (not in Python)."""
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        stages = set_based_stages(path, allow_privileged=True, using="default", progress=None)
        transaction.set_rollback(True)
    on_the_server = any(f'CREATE TEMPORARY TABLE "_dbops_stage_{TABLE}" AS SELECT' in query["sql"] for query in queries)
    return stages is not None and on_the_server


def _import(tmp_path, monkeypatch, reading: str, field: str, literals: list[str], *, fits: bool = True):
    """Imports the literals the way `reading` says; on the set-based path, a file whose values `fits` is
    checked and cast on the server, one that does not is doubted there and refused the checking way."""
    fmt = reading.split("-")[0]
    path = _write(tmp_path, fmt, field, literals)
    if reading == "jsonl-checking":  # as on an engine without the set-based path
        monkeypatch.setattr(type(get_connector("default")), "supports_json_staging", False)
    if fmt == "jsonl":
        assert _set_based_accepts(path) is (reading == "jsonl-set-based" and fits)
    import_data(input_path=path, fmt=fmt)


def _column(name: str, cast: str = "") -> list:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {name}{cast} FROM {TABLE} ORDER BY id")  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


DECIMALS = ["1.10", "0.1", "12345678901234567.89", "-0.5", "5.0", "7", "123456789012345678"]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", READINGS)
def test_a_decimal_is_stored_exactly_as_written(tmp_path, monkeypatch, measurement, reading):
    _import(tmp_path, monkeypatch, reading, "amount", DECIMALS)
    assert _column("amount", "::text") == [f"{Decimal(literal):.{DECIMAL_PLACES}f}" for literal in DECIMALS]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", ["jsonl-set-based", "jsonl-checking", "json"])
def test_a_decimal_written_as_text_is_stored_exactly(tmp_path, monkeypatch, measurement, reading):
    texts = ["12.30", "-0.5", "12345678901234567.89"]  # export_data writes a Decimal as text
    _import(tmp_path, monkeypatch, reading, "amount", [json.dumps(text) for text in texts])
    assert _column("amount", "::text") == [f"{Decimal(text):.{DECIMAL_PLACES}f}" for text in texts]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", ["jsonl-checking", "json", "csv"])
def test_a_decimal_in_exponent_form_is_stored_exactly(tmp_path, monkeypatch, measurement, reading):
    literals = ["1e2", "1.5E-1", "-2.5e+3"]
    _import(tmp_path, monkeypatch, reading, "amount", literals)
    assert _column("amount", "::text") == [f"{Decimal(literal):.{DECIMAL_PLACES}f}" for literal in literals]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("0.125", "no more than 2 decimal places"),
        ("1.0000000000000001", "no more than 2 decimal places"),  # a float would round it to 1.0, which fits
        ("1234567890123456789.5", "no more than 18 digits before the decimal point"),
        ("123456789012345678901234567890", "no more than 20 digits"),  # beyond bigint too
    ],
)
def test_a_decimal_its_field_cannot_hold_is_refused_and_nothing_is_written(
    tmp_path, monkeypatch, measurement, reading, literal, message
):
    measurement.objects.create(id=99, amount=Decimal("3.14"))
    with pytest.raises(ImportValidationError, match=message) as refused:
        _import(tmp_path, monkeypatch, reading, "amount", ["1.5", literal], fits=False)
    assert f"{ENTITY} record 2, field 'amount'" in str(refused.value)
    assert _column("id") == [99] and _column("amount", "::text") == ["3.14"]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", READINGS)
def test_a_decimal_without_whole_digits_takes_what_django_allows_whichever_path(
    tmp_path, monkeypatch, measurement, reading
):
    _import(tmp_path, monkeypatch, reading, "share", ["0.5", "-0.99", "0.0"])
    assert _column("share", "::text") == ["0.50", "-0.99", "0.00"]
    measurement.objects.all().delete()
    refused = tmp_path / "refused"
    refused.mkdir()
    with pytest.raises(ImportValidationError, match="no more than 0 digits before the decimal point"):
        _import(refused, monkeypatch, reading, "share", ["0.5", "0"], fits=False)  # as DecimalValidator counts
    assert _column("id") == []


FLOATS = [
    "0.1",
    "1.10",
    "12345678901234567.89",
    "5.0",
    "-7",
    "123456789012345678901234567890",
    "2.2250738585072014e-308",
]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", ["jsonl-set-based", "jsonl-checking", "json", "csv"])
def test_a_float_is_stored_as_the_nearest_double_to_what_is_written(tmp_path, monkeypatch, measurement, reading):
    literals = FLOATS if reading != "jsonl-set-based" else [f for f in FLOATS if "e" not in f]
    _import(tmp_path, monkeypatch, reading, "reading", literals)
    assert _column("reading") == [float(literal) for literal in literals]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize(
    "literal", ["1" + "0" * 400, "1" + "0" * 400 + ".5", "0." + "0" * 400 + "1", "1e400", "-1e400", "1e-400"]
)
def test_a_float_beyond_the_range_of_a_double_is_refused_and_nothing_is_written(
    tmp_path, monkeypatch, measurement, reading, literal
):
    measurement.objects.create(id=99, reading=2.5)
    with pytest.raises(ImportValidationError, match="out of the range of a float") as refused:
        _import(tmp_path, monkeypatch, reading, "reading", ["1.5", literal], fits=False)
    assert f"{ENTITY} record 2, field 'reading'" in str(refused.value)
    assert _column("id") == [99] and _column("reading") == [2.5]


JSON_VALUES = [
    '{"price":1.10,"total":12345678901234567.89,"rates":[0.1,5.0,-0.0],"count":123456789012345678901234567890}',
    '[1.10,{"nested":{"deeper":[0.30000000000000004,1.000000000000000000001]}}]',
    "1.10",
]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", READINGS)
def test_numbers_inside_a_json_field_stay_the_numbers_written(tmp_path, monkeypatch, measurement, reading):
    _import(tmp_path, monkeypatch, reading, "details", JSON_VALUES)
    with connection.cursor() as cursor:  # jsonb's own reading of the file's text: numbers exactly, as numbers
        expected = [cursor.execute("SELECT %s::jsonb::text", [text]) or cursor.fetchone()[0] for text in JSON_VALUES]
    assert _column("details", "::text") == expected
    assert _column("jsonb_typeof(details->'price')")[0] == "number"


@pytest.mark.django_db
def test_a_jsonl_line_in_another_shape_keeps_its_numbers_on_the_set_based_path(tmp_path, measurement):
    # json.dumps's spacing, not export_data's: the set-based path parses the line and re-encodes its record
    path = tmp_path / "spaced.jsonl"
    lines = [json.dumps(EXPORT_HEADER)]
    lines += [
        f'{{"entity": "{ENTITY}", "data": {{"id": {n}, "details": {text}}}}}' for n, text in enumerate(JSON_VALUES, 1)
    ]
    path.write_text("\n".join([*lines, json.dumps({"end": True, "counts": {ENTITY: len(JSON_VALUES)}})]) + "\n")
    assert _set_based_accepts(path)
    import_data(input_path=path, fmt="jsonl")
    with connection.cursor() as cursor:
        expected = [cursor.execute("SELECT %s::jsonb::text", [text]) or cursor.fetchone()[0] for text in JSON_VALUES]
    assert _column("details", "::text") == expected


@pytest.mark.django_db
@pytest.mark.parametrize("reading", ["jsonl-checking", "json", "csv"])
def test_a_json_field_number_in_exponent_form_is_read_as_jsonb_reads_it(tmp_path, monkeypatch, measurement, reading):
    literals = ['{"big":1e2,"small":1.5E-7,"precise":1.10e1}']
    _import(tmp_path, monkeypatch, reading, "details", literals)
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", literals)
        assert _column("details", "::text") == [cursor.fetchone()[0]]


@pytest.mark.django_db
@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize(
    "literal", ["9" * 5000, "-" + "9" * 4400, '"' + "9" * 5000 + '"'], ids=["digits", "negative", "text"]
)
def test_an_integer_past_pythons_parsing_limit_is_refused_in_one_short_line(
    tmp_path, monkeypatch, measurement, reading, literal
):
    # int() refuses more than 4,300 digits with a bare ValueError, which used to escape as a traceback
    if reading == "csv":
        literal = literal.strip('"')  # a cell is text already
    measurement.objects.create(id=99, count=7)
    with pytest.raises(ImportValidationError, match=r"is out of range \(-9223372036854775808\.\.") as refused:
        _import(tmp_path, monkeypatch, reading, "count", ["1", literal], fits=False)
    message = str(refused.value)
    assert f"{ENTITY} record 2, field 'count'" in message and "characters)" in message and len(message) < 300
    assert _column("id") == [99] and _column("count") == [7]


# An integer past int()'s limit in a JSON field: jsonb holds it, so it is read (as the exact number) and
# written back digit for digit.
LONG_INTEGER = "9" * 5000
STORED_ROWS = [
    '(1, 12345678901234567.89, 0.1, \'{"price":1.10,"total":12345678901234567.89,"n":[0.1,5.0,1e2]}\')',
    "(2, 1.10, 123456789.123, '[1.000000000000000000001,-0.0,123456789012345678901234567890]')",
    "(3, -0.01, 0.30000000000000004, '1.10')",
    "(4, NULL, NULL, '{}')",
    '(5, 999999999999999999.99, -2.5, \'{"a":{"b":[2.50]},"c":0.30000000000000004}\')',
    f"(12, NULL, NULL, '{{\"long\":[{LONG_INTEGER},-{LONG_INTEGER}1.5]}}')",
]
# Floats exports write in exponent form or as text (JSON has no number for NaN): a jsonl file holding
# them goes the checking way.
FLOAT_EDGE_ROWS = [
    "(6, 0, 'Infinity', '[]')",
    "(7, 0, '-Infinity', '[]')",
    "(8, 0, 'NaN', '[]')",
    "(9, 0, 1.7976931348623157e308, '[]')",
    "(10, 0, 5e-324, '[]')",
    "(11, 0, -2.2250738585072014e-308, '[]')",
]
EXPORTS = [("jsonl", "jsonl-set-based"), ("jsonl", "jsonl-checking"), ("json", "json"), ("csv", "csv"), ("sql", "sql")]


def _stored() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, amount::text, reading::text, details::text FROM {TABLE} ORDER BY id")  # noqa: S608
        return cursor.fetchall()


def _export_wipe_import(tmp_path, monkeypatch, model, fmt: str, reading: str, rows: list[str]):
    """The rows (SQL literals: the ORM would hand JSON numbers over as floats) exported in `fmt`, deleted,
    and imported back the way `reading` says; the rows as stored before."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (id, amount, reading, details) VALUES {', '.join(rows)}")  # noqa: S608
    before = _stored()
    target = tmp_path / ("export.zip" if fmt == "csv" else f"export.{fmt}")
    export_data(entities=[ENTITY], output=target, fmt=fmt)
    model.objects.all().delete()
    if reading == "jsonl-checking":
        monkeypatch.setattr(type(get_connector("default")), "supports_json_staging", False)
    if reading == "jsonl-set-based":
        assert _set_based_accepts(target) is (rows == STORED_ROWS)
    import_data(input_path=target, fmt=fmt)
    return before


@pytest.mark.django_db
@pytest.mark.parametrize(("fmt", "reading"), EXPORTS)
def test_exported_numbers_import_back_unchanged(tmp_path, monkeypatch, measurement, fmt, reading):
    before = _export_wipe_import(tmp_path, monkeypatch, measurement, fmt, reading, STORED_ROWS)
    assert _stored() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("fmt", "reading"), EXPORTS)
def test_exported_extreme_floats_import_back_unchanged(tmp_path, monkeypatch, measurement, fmt, reading):
    before = _export_wipe_import(tmp_path, monkeypatch, measurement, fmt, reading, FLOAT_EDGE_ROWS)
    assert _stored() == before
