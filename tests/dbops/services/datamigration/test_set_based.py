"""import_data's set-based path (checks in SQL on the server) takes clean jsonl files, and hands any file
it doubts to the checking path, whose refusals stay exactly as they were."""

from __future__ import annotations

import json
import re
import threading
import time

import psycopg2
import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from dbops.exceptions import ImportFormatError, ImportValidationError, PrivilegedImportRefused
from dbops.models import DataTransferRun
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from dbops.services.datamigration.set_based import set_based_stages
from tests.dbops.services.datamigration.helpers import domain_rows, seed, wipe_domain


def _staged(path, *, allow_privileged=True):
    with transaction.atomic():
        stages = set_based_stages(path, allow_privileged=allow_privileged, using="default", progress=None)
        counts = None if stages is None else {name: stage.rows for name, stage in stages.items()}
        transaction.set_rollback(True)
    return counts


def _edited_export(tmp_path, needle: str | re.Pattern, replacement: str):
    """A jsonl export of a seeded database with the first `needle` (a string, or a compiled regex) replaced,
    the domain then wiped; and the rows the database held before the wipe."""
    seed(scale=0.2)
    seeded = domain_rows()
    target = tmp_path / "all.jsonl"
    export_data(entities=None, output=target, fmt="jsonl")
    text = target.read_text()
    if isinstance(needle, re.Pattern):
        edited, count = needle.subn(replacement, text, count=1)
    else:
        edited, count = text.replace(needle, replacement, 1), int(needle in text)
    assert count == 1
    target.write_text(edited)
    wipe_domain()
    return target, seeded


@pytest.mark.django_db
def test_a_clean_export_is_staged_on_the_server_and_imports_the_same_rows(tmp_path):
    seed(scale=0.2)
    before = domain_rows()
    target = tmp_path / "all.jsonl"
    export_data(entities=None, output=target, fmt="jsonl")
    counts = _staged(target)
    assert counts is not None and sum(counts.values()) == sum(len(rows) for rows in before.values())
    wipe_domain()
    import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert domain_rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("needle", "replacement", "message"),
    [
        ('"position":0}', '"position":1e2}', "expected an integer"),  # an exponent: jsonb would read 100
        ('"action":"', '"action":"pwn', "is not one of the choices"),
        ('"entity_type":"', '"entity_type":"' + "x" * 70, "longer than 64"),
        ('"position":0}', '"position":0.5}', "expected an integer"),
        ('"position":0}', '"position":1.0}', "expected an integer"),  # jsonb keeps the scale: not an integer
        ('"position":0}', '"position":0,"bogus":1}', "unknown field"),
        ('"size":', '"size":-', "must not be negative"),
        ('"email":"', '"email":"not an email ', "valid email"),  # users: their validators run in Python
        # PostgreSQL reads each of these as another value; Python refuses them, so must the import
        (re.compile(r'"ip_address":"[^"]*"'), '"ip_address":"01.2.3.4"', "is not an IP address"),
        (re.compile(r'"ip_address":"[^"]*"'), '"ip_address":"1.2.3.4/32"', "is not an IP address"),
        (re.compile(r'"ip_address":"[^"]*"'), '"ip_address":"fe80::1%eth0"', "names a zone"),
        (re.compile(r'("timestamp":"\d{4}-\d\d-\d\dT)\d\d:\d\d:\d\d'), r"\g<1>24:00:00", "ISO 8601"),
        (re.compile(r'("timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:)\d\d'), r"\g<1>60", "ISO 8601"),
        (re.compile(r'("timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)[^"]*"'), r'\g<1> PST"', "ISO 8601"),
        # blank=False: Django's full_clean refuses the empty string, and so must both paths
        ('"name":"admin"', '"name":""', r"roles record 1, field 'name': may not be blank"),
        (re.compile(r'"action":"[a-z]+"'), '"action":""', r"field 'action': may not be blank"),  # choices allow ""
        # What PostgreSQL cannot store: refused by record and field, not a driver traceback or a chunk's first
        ('"name":"', '"name":"\\ud800', r"roles record 1, field 'name': holds a lone UTF-16 surrogate"),
        (re.compile(r'"changes":\{(?=")'), r'"changes":{"nul":"a\\u0000b",', r"field 'changes': holds a NUL"),
    ],
)
def test_a_doubtful_record_goes_the_checking_way_and_is_refused_with_nothing_written(
    tmp_path, needle, replacement, message
):
    target, _seeded = _edited_export(tmp_path, needle, replacement)
    assert _staged(target) is None
    before, runs = domain_rows(), DataTransferRun.objects.count()
    with pytest.raises(ImportValidationError, match=message):
        import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert domain_rows() == before and DataTransferRun.objects.count() == runs


@pytest.mark.django_db
def test_json_deeper_than_python_reads_goes_the_checking_way_and_is_refused(tmp_path):
    # jsonb takes 3,000 levels; Python's parser (and so every export of the row) does not
    deep = "[" * 3000 + "]" * 3000
    target, _seeded = _edited_export(tmp_path, re.compile(r'"changes":\{(?=")'), f'"changes":{{"deep":{deep},')
    assert _staged(target) is None
    before = domain_rows()
    with pytest.raises(ImportFormatError, match="nested too deeply"):
        import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert domain_rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("needle", "replacement", "set_based"),
    [
        # a string of digits for an integer: the server's check doubts it, the checking path reads it
        ('"position":0}', '"position":"0"}', False),
        # a boolean word: users are read in Python on the set-based path too (their per-row defaults)
        ('"is_active":true', '"is_active":"yes"', True),
    ],
)
def test_a_value_only_the_checking_path_reads_is_imported_the_same_way(tmp_path, needle, replacement, set_based):
    target, before = _edited_export(tmp_path, needle, replacement)
    assert (_staged(target) is not None) is set_based
    import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert domain_rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("needle", "replacement"),
    [
        ('"is_superuser":false', '"is_superuser":true'),
        ('"position":0}', '"position":0}'),  # unchanged: user_roles memberships are refused by themselves
    ],
)
def test_privileges_without_allow_privileged_go_the_checking_way_and_are_refused(tmp_path, needle, replacement):
    target, _seeded = _edited_export(tmp_path, needle, replacement)
    assert _staged(target, allow_privileged=False) is None
    before, runs = domain_rows(), DataTransferRun.objects.count()
    with pytest.raises(PrivilegedImportRefused, match="grants a privilege|membership that grants privileges"):
        import_data(input_path=target, fmt="jsonl", allow_privileged=False)
    assert domain_rows() == before and DataTransferRun.objects.count() == runs


@pytest.mark.django_db
def test_a_line_naming_its_entity_again_goes_the_checking_way_which_refuses_it(tmp_path):
    # JSON would keep the last of two equal keys, making this dictionary entry's line a concept record:
    # the prefix must not decide, and the checking path refuses a line that names a key twice.
    target, _seeded = _edited_export(tmp_path, '"position":0}}', '"position":0},"entity":"concepts"}')
    assert _staged(target) is None
    before = domain_rows()
    with pytest.raises(ImportFormatError, match=r"line \d+: names the key 'entity' more than once"):
        import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert domain_rows() == before


@pytest.mark.django_db
def test_an_upsert_with_a_json_null_sets_the_field_to_null_on_the_set_based_path(tmp_path):
    """jsonb_to_record gives SQL NULL for a JSON null as for an absent key: a record saying
    "ip_address": null carries the field, and the upsert must write the null, not keep the old address."""
    from multipult.core.models import AuditLog

    seed(scale=0.2)
    row = AuditLog.objects.exclude(ip_address=None).order_by("pk").first()
    target = tmp_path / "one.jsonl"
    export_data(entities=["audit_logs"], output=target, fmt="jsonl")
    lines = target.read_text().splitlines()
    needle = f'"data":{{"id":{row.pk},'
    edited = [line.replace(f'"ip_address":"{row.ip_address}"', '"ip_address":null') if needle in line else line
              for line in lines]  # fmt: skip
    assert edited != lines
    target.write_text("\n".join(edited) + "\n")
    assert _staged(target) is not None  # the set-based path takes it
    result = import_data(input_path=target, fmt="jsonl", mode="upsert", allow_privileged=True)
    row.refresh_from_db()
    assert row.ip_address is None
    assert not any("ip_address" in warning for warning in result.warnings)


@pytest.mark.django_db
def test_a_json_null_in_a_json_field_without_null_is_kept_not_replaced_by_the_default(tmp_path):
    """The field's default ({}) is for a record that leaves the field out; a JSON null is a JSON value,
    which the checking path stores as such, and so must the set-based path."""
    target, _seeded = _edited_export(tmp_path, re.compile(r'"changes":\{[^{}]*\}'), '"changes":null')
    assert _staged(target) is not None
    import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM core_auditlog WHERE changes = 'null'::jsonb")
        assert cursor.fetchone()[0] == 1


def _left_behind() -> tuple[list[str], list[str]]:
    """Raw tables an import left in the catalog, and copier threads still alive."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE '\\_dbops\\_raw\\_%'")
        tables = [name for (name,) in cursor.fetchall()]
    return tables, [thread.name for thread in threading.enumerate() if thread.name == "dbops-import-copy"]


@pytest.mark.django_db(transaction=True)
def test_the_raw_tables_and_the_copy_thread_are_gone_after_an_import_and_after_a_refusal(tmp_path):
    # A trailing comma: the server's COPY into jsonb fails in the copy thread, in the middle of the file.
    target, seeded = _edited_export(tmp_path, '"position":3}', '"position":3,}')
    with pytest.raises(ImportFormatError, match="malformed JSON"):
        import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert _left_behind() == ([], [])
    assert domain_rows() == {name: [] for name in seeded}
    target.write_text(target.read_text().replace('"position":3,}', '"position":3}'))
    import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert _left_behind() == ([], [])
    assert domain_rows() == seeded


@pytest.mark.django_db
def test_a_user_who_may_not_create_tables_in_the_schema_gets_temporary_raw_tables(tmp_path):
    """The raw tables are unlogged tables in the schema (parallel workers can scan those); where the user
    may not create tables there, temporary ones do the same work, only without the parallel scan."""
    seed(scale=0.2)
    target = tmp_path / "all.jsonl"
    export_data(entities=None, output=target, fmt="jsonl")
    expected = {name: len(rows) for name, rows in domain_rows().items() if rows}
    with CaptureQueriesContext(connection) as queries:
        assert _staged(target) == expected
    assert any(query["sql"].startswith('CREATE UNLOGGED TABLE "_dbops_raw_') for query in queries)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE ROLE dbops_no_create NOLOGIN")  # undone with the transaction
        cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        cursor.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO dbops_no_create")
        cursor.execute("SET LOCAL ROLE dbops_no_create")
        with CaptureQueriesContext(connection) as queries:
            counts = _staged(target)
        transaction.set_rollback(True)
    assert counts == expected
    creates = [query["sql"] for query in queries if "_dbops_raw_" in query["sql"] and "CREATE" in query["sql"]]
    assert creates and all(sql.startswith("CREATE TEMPORARY TABLE") for sql in creates)


@pytest.mark.django_db
@pytest.mark.parametrize("order", ["null first", "null second"])
def test_a_json_null_in_a_json_field_without_null_is_kept_on_the_checking_path_whatever_the_order(tmp_path, order):
    # The first record decides the fast plan; a record carrying other fields went through convert_record,
    # which refused the JSON null ("required (null given)") that the fast and set-based paths keep.
    # The exponent (1e2) sends the whole file the checking way.
    header = {"format": "multipult-export", "version": 1, "contents": ["audit_logs"], "anonymized": False}
    without = {"id": 1, "action": "login", "entity_type": "t0", "timestamp": "2024-01-01T10:00:00+00:00"}
    with_null = {**without, "id": 2, "changes": None}
    exponent = json.dumps({**without, "id": 3, "changes": {"x": "EXPONENT"}}).replace('"EXPONENT"', "1e2")
    records = [json.dumps(without), json.dumps(with_null)]
    if order == "null first":
        records.reverse()
    lines = [json.dumps(header), *(f'{{"entity":"audit_logs","data":{body}}}' for body in [*records, exponent])]
    lines.append(json.dumps({"end": True, "counts": {"audit_logs": 3}}))
    target = tmp_path / "logs.jsonl"
    target.write_text("\n".join(lines) + "\n")
    assert _staged(target) is None  # the checking path takes it
    import_data(input_path=target, fmt="jsonl")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, changes::text FROM core_auditlog ORDER BY id")
        assert cursor.fetchall() == [(1, "{}"), (2, "null"), (3, '{"x": 100}')]


@pytest.mark.django_db(transaction=True)
def test_a_session_ended_mid_copy_is_one_error_and_prints_no_record(capsys):
    """psycopg2 prints the server's error through sys.excepthook before raising it when the session ends
    mid-COPY, with a CONTEXT line quoting the record being sent (personal data on the terminal)."""
    from dbops.engines.postgresql.json_staging import Copier

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE copied (recno bigint, doc jsonb)")
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    record = '{"email": "planted.person@example.org", "note": "%s"}' % ("x" * 200)
    lines = "".join(f"{number}\x02{record}\n" for number in range(400_000))  # a COPY of some seconds
    settings = connection.settings_dict
    watcher = psycopg2.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], password=settings["PASSWORD"],
        dbname=settings["NAME"],
    )  # fmt: skip
    watcher.autocommit = True

    def end_the_session_once_it_copies() -> None:
        with watcher.cursor() as cursor:
            for _ in range(600):
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid = %s AND state = 'active' AND query LIKE 'COPY%%'",
                    [pid],
                )
                if cursor.fetchall():
                    return
                time.sleep(0.01)

    ender = threading.Thread(target=end_the_session_once_it_copies)
    ender.start()
    try:
        with pytest.raises(OperationalError, match="connection to the database was lost"), Copier(connection) as copier:
            copier.put("COPY copied FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')", lines)
            copier.wait()
    finally:
        ender.join(30)
        watcher.close()
        connection.close()  # the session is gone; the next use reconnects
    printed = capsys.readouterr()
    assert "planted.person" not in printed.err + printed.out
    assert printed.err == ""
