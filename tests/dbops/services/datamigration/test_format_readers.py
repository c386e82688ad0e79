"""The csv, json and jsonl readers on input an adversary writes: long cells, odd manifests, headers that
disagree with their manifest, duplicate keys, byte-order marks, JSON field values of every kind. Bad input
is one ImportFormatError and leaves the database exactly as it was; good input keeps every value."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from django.db import connection
from django.utils import timezone

from dbops.exceptions import ImportFormatError
from dbops.models import DataTransferRun
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from multipult.core.models import AuditLog, Concept
from tests.dbops.services.datamigration.helpers import EXPORT_HEADER, fingerprint, seed, user_record, wipe_domain

pytestmark = pytest.mark.django_db


def _refused(path, fmt: str, match: str, **options) -> ImportFormatError:
    """import_data refuses the file with one short message matching `match`, and changes nothing."""
    state, runs = fingerprint(), DataTransferRun.objects.count()
    with pytest.raises(ImportFormatError, match=match) as refused:
        import_data(input_path=path, fmt=fmt, **options)
    message = str(refused.value)
    assert "Traceback" not in message and "\n" not in message and len(message) < 400, message
    assert fingerprint() == state and DataTransferRun.objects.count() == runs
    return refused.value


def _rewrite_zip(archive, change) -> None:
    """Rewrites the zip's members through change(members) (a dict name -> bytes)."""
    with zipfile.ZipFile(archive) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    change(members)
    with zipfile.ZipFile(archive, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)


def _edit_manifest(folder, entity: str, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["entities"][entity].update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


# --- csv: long cells and deep JSON --------------------------------------------------------------------


def test_a_csv_text_value_longer_than_the_csv_modules_default_limit_reads_back(tmp_path):
    seed(scale=0.1)
    concept = Concept.objects.order_by("pk").first()
    Concept.objects.filter(pk=concept.pk).update(description="L" * 200_000)
    archive = tmp_path / "c.zip"
    export_data(entities="concepts", output=archive, fmt="csv")
    Concept.objects.filter(pk=concept.pk).update(description="changed")

    import_data(input_path=archive, fmt="csv", mode="upsert")

    assert Concept.objects.get(pk=concept.pk).description == "L" * 200_000


def test_a_csv_cell_over_the_readers_bound_is_one_clear_error(tmp_path, monkeypatch):
    from dbops.services.datamigration.formats import csv as csv_format

    seed(scale=0.1)
    folder = tmp_path / "c"
    export_data(entities="roles", output=folder, fmt="csv")
    lines = (folder / "roles.csv").read_text().splitlines()
    cells = next(csv.reader([lines[1]]))
    cells[2] = "D" * 2_000
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    (folder / "roles.csv").write_text(lines[0] + "\r\n" + buffer.getvalue())
    _edit_manifest(folder, "roles", rows=1)
    monkeypatch.setattr(csv_format, "MAX_CELL_CHARS", 1_000)  # the bound, made small enough to test
    process_limit = csv.field_size_limit(1_000)
    try:
        _refused(folder, "csv", r"roles.csv: record 1 has a cell longer than 1,000 characters")
    finally:
        csv.field_size_limit(process_limit)


def test_a_csv_json_cell_nested_100000_levels_is_the_one_nested_too_deeply_message(tmp_path):
    seed(scale=0.1)
    folder = tmp_path / "deep"
    export_data(entities="audit_logs", output=folder, fmt="csv")
    logs = folder / "audit_logs.csv"
    header = logs.read_text().splitlines()[0]
    names = header.split(",")
    cells = [str(AuditLog.objects.order_by("pk").first().pk) if name == "id" else "" for name in names]
    cells[names.index("changes")] = "[" * 100_000 + "]" * 100_000
    logs.write_text(header + "\r\n" + ",".join(cells) + "\r\n")
    _edit_manifest(folder, "audit_logs", rows=1)

    _refused(folder, "csv", r"audit_logs.csv: record 1: JSON nested too deeply", mode="upsert")


# --- csv: manifests naming what is no file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("named", "says"),
    [("a\u0000.csv", r"names 'a\\x00.csv', which is no file name"), ("sub", r"names 'sub', which is a folder")],
    ids=["nul", "folder"],
)
def test_a_csv_manifest_naming_what_is_no_file_is_refused_by_name(tmp_path, named, says):
    seed(scale=0.1)
    folder = tmp_path / "csv"
    export_data(entities="roles", output=folder, fmt="csv")
    (folder / "sub").mkdir()
    _edit_manifest(folder, "roles", file=named)

    _refused(folder, "csv", rf"manifest.json {says}")


def test_a_zipped_csv_manifest_naming_a_folder_is_refused_by_name(tmp_path):
    seed(scale=0.1)
    archive = tmp_path / "c.zip"
    export_data(entities="roles", output=archive, fmt="csv")

    def point_at_a_folder(members):
        manifest = json.loads(members["manifest.json"])
        manifest["entities"]["roles"]["file"] = "sub"
        members["manifest.json"] = json.dumps(manifest).encode()
        members["sub/"] = b""
        members["sub/roles.csv"] = members["roles.csv"]

    _rewrite_zip(archive, point_at_a_folder)

    _refused(archive, "csv", r"manifest.json names 'sub', which is a folder")


# --- csv: the header and the manifest's fields ----------------------------------------------------------


def _roles_csv(tmp_path, header: str, row: str):
    seed(scale=0.1)
    folder = tmp_path / "csv"
    export_data(entities="roles", output=folder, fmt="csv")
    (folder / "roles.csv").write_text(f"{header}\r\n{row}\r\n")
    _edit_manifest(folder, "roles", rows=1)
    return folder


def test_a_csv_header_that_leaves_out_a_manifest_field_is_refused(tmp_path):
    folder = _roles_csv(tmp_path, "id,name,description", "1,admin,Changed")

    _refused(folder, "csv", r"roles.csv: the header does not match the manifest's fields: it lacks 'created_at'\.")


def test_a_csv_header_with_a_field_the_manifest_does_not_list_is_refused(tmp_path):
    folder = _roles_csv(tmp_path, "id,name,description,created_at,extra", "1,a,b,2025-01-01T00:00:00+00:00,x")

    _refused(folder, "csv", r"it has 'extra' the manifest does not list")


def test_a_csv_header_naming_a_field_twice_is_refused(tmp_path):
    folder = _roles_csv(tmp_path, "id,id,name,description,created_at", "1,2,a,b,2025-01-01T00:00:00+00:00")

    _refused(folder, "csv", r"roles.csv: the header names 'id' more than once")


def test_a_csv_manifest_listing_a_field_twice_is_refused(tmp_path):
    seed(scale=0.1)
    folder = tmp_path / "csv"
    export_data(entities="roles", output=folder, fmt="csv")
    _edit_manifest(folder, "roles", fields=["id", "name", "name", "description", "created_at"])

    _refused(folder, "csv", r"'fields' names 'name' more than once")


def test_a_csv_file_starting_with_a_byte_order_mark_says_so(tmp_path):
    folder = _roles_csv(tmp_path, "\ufeffid,name,description,created_at", "1,a,b,2025-01-01T00:00:00+00:00")

    _refused(folder, "csv", r"roles.csv: starts with a UTF-8 byte-order mark")


# --- csv: JSON field values round trip ------------------------------------------------------------------

JSON_VALUES = ["str", "5", "", 5, 1.5, True, None, {"a": 1}, [1, "two", None], {"deep": [{"x": {"y": ["z"]}}]}, {}]


def _changes_texts(ids) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT changes::text FROM {AuditLog._meta.db_table} WHERE id = ANY(%s) ORDER BY id",  # noqa: S608
            [list(ids)],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("name", ["csv", "c.zip"])
def test_json_field_values_of_every_kind_survive_a_csv_round_trip(tmp_path, name):
    wipe_domain()
    ids = list(range(1, len(JSON_VALUES) + 1))
    for pk, value in zip(ids, JSON_VALUES, strict=True):
        AuditLog.objects.create(
            id=pk, action="login", entity_type="core.user", entity_id=1, changes={}, timestamp=timezone.now()
        )
        with connection.cursor() as cursor:  # as jsonb: Django would store None as SQL NULL
            cursor.execute(
                f"UPDATE {AuditLog._meta.db_table} SET changes = %s::jsonb WHERE id = %s",  # noqa: S608
                [json.dumps(value), pk],
            )
    before = _changes_texts(ids)
    assert before[0] == '"str"' and before[6] == "null"
    target = tmp_path / name
    export_data(entities="audit_logs", output=target, fmt="csv")
    AuditLog.objects.all().delete()

    import_data(input_path=target, fmt="csv")

    assert _changes_texts(ids) == before


# --- json and jsonl: a record naming a field twice ------------------------------------------------------

ROLE_FIELDS = '"description":"Full access","created_at":"2025-01-01T00:00:00+00:00"'


def _jsonl_lines(path, *record_texts: str, entity: str = "roles", spaced: bool = False):
    """A jsonl file of these record texts as export_data writes its lines (the set-based path sends them
    to the server unparsed) or, spaced, as json.dumps would (the parsing path)."""
    separator = ", " if spaced else ","
    lines = [json.dumps(EXPORT_HEADER)]
    lines += [f'{{"entity":"{entity}"{separator}"data":{text}}}' for text in record_texts]
    lines.append(json.dumps({"end": True, "counts": {entity: len(record_texts)}}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("spaced", [False, True], ids=["as-exported", "spaced"])
@pytest.mark.parametrize(
    "repeat",
    ['"name":"admin","name":"hacked"', '"name":"admin","n\\u0061me":"hacked"', '"name":"admin","name" :"hacked"'],
    ids=["plain", "escaped", "space-before-colon"],
)
def test_a_jsonl_record_naming_a_field_twice_is_refused(tmp_path, repeat, spaced):
    seed(scale=0.1)
    path = _jsonl_lines(tmp_path / "r.jsonl", f'{{"id":1,{repeat},{ROLE_FIELDS}}}', spaced=spaced)

    _refused(path, "jsonl", r"line 2: roles record 1 names the field 'name' more than once", mode="upsert")


def test_a_jsonl_record_repeating_a_privilege_flag_is_refused(tmp_path):
    wipe_domain()
    record = json.dumps(user_record(id=201))[:-1] + ',"is_superuser":true,"is_superuser":false}'
    path = _jsonl_lines(tmp_path / "u.jsonl", record.replace(": ", ":").replace(", ", ","), entity="users")

    _refused(path, "jsonl", r"users record 1 names the field 'is_superuser' more than once")


def test_a_jsonl_line_repeating_its_data_key_is_refused(tmp_path):
    seed(scale=0.1)
    path = _jsonl_lines(tmp_path / "r.jsonl", f'{{"id":1,"name":"admin",{ROLE_FIELDS}}},"data":{{"id":1}}')

    _refused(path, "jsonl", r"line 2: names the key 'data' more than once", mode="upsert")


def test_a_json_record_naming_a_field_twice_is_refused(tmp_path):
    seed(scale=0.1)
    path = tmp_path / "r.json"
    record = f'{{"id":1,"name":"admin","name":"hacked",{ROLE_FIELDS}}}'
    path.write_text(json.dumps(EXPORT_HEADER)[:-1] + ',"entities":{"roles":[\n' + record + "\n]}}\n")

    _refused(path, "json", r"entities.roles record 1 \(ending on line 2\) names the key 'name' more than once")


# --- json: a byte-order mark ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_json_or_jsonl_file_starting_with_a_byte_order_mark_says_so(tmp_path, fmt):
    seed(scale=0.1)
    path = tmp_path / f"x.{fmt}"
    export_data(entities="roles", output=path, fmt=fmt)
    path.write_text("\ufeff" + path.read_text(encoding="utf-8"), encoding="utf-8")

    refused = _refused(path, fmt, r"line 1.*Unexpected UTF-8 BOM \(the file starts with a byte-order mark")
    assert refused.parameter is None  # not a matter of --format


def test_a_jsonl_export_with_an_entity_of_no_rows_imports_back(tmp_path):
    # The end line counts every exported entity, 0 for one that had no rows (and so no line)
    seed(scale=0.05)
    target = tmp_path / "some.jsonl"
    export_data(entities="roles,concepts", where=["concepts.id<0"], output=target, fmt="jsonl")
    assert '"concepts":0' in target.read_text().splitlines()[-1]
    wipe_domain()
    result = import_data(input_path=target, fmt="jsonl")
    assert {item.entity: item.created for item in result.entities}["roles"] > 0 and not Concept.objects.exists()
