"""Anonymized jsonl exports rendered by the server (simple rules in SQL, kept text scanned by distinct
value) write the same records as row by row, and refuse the same record and field."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import ClassVar

import psycopg2.extensions
import pytest
from django.db import connection

from dbops.engines import get_connector
from dbops.engines.postgresql.data import PostgreSQLData
from dbops.engines.postgresql.masking_sql import hmac_pads
from dbops.exceptions import PersonalDataFound
from dbops.services.datamigration import exports, masked_copy
from dbops.services.datamigration.anonymization import Anonymizer
from dbops.services.datamigration.entities import ENTITIES
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.masked_copy import masked_columns, sql_masking_for
from dbops.services.datamigration.pii_scan import PiiScanner
from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, StoredFile, User
from tests.dbops.services.datamigration.helpers import seed


def _records(path):
    records = []
    for line in path.read_text().splitlines()[1:-1]:
        item = json.loads(line)
        for name, value in item["data"].items():  # the server writes 6 fraction digits only when needed
            if isinstance(value, str) and len(value) > 18 and value[10:11] == "T":
                item["data"][name] = datetime.fromisoformat(value)
        records.append(item)
    return records


def _row_by_row(monkeypatch):
    monkeypatch.setattr(PostgreSQLData, "supports_sql_masking", False)


@pytest.mark.django_db
def test_the_server_masks_as_python_does(tmp_path, monkeypatch):
    seed(scale=0.2)
    on_server, in_python = tmp_path / "server.jsonl", tmp_path / "python.jsonl"
    result = export_data(entities=None, output=on_server, fmt="jsonl", anonymize=True)
    _row_by_row(monkeypatch)
    reference = export_data(entities=None, output=in_python, fmt="jsonl", anonymize=True)
    assert _records(on_server) == _records(in_python)
    assert result.scanned_strings == reference.scanned_strings > 0
    assert any(item["entity"] == "audit_logs" and item["data"]["ip_address"] for item in _records(on_server))


@pytest.mark.django_db
def test_a_hit_in_a_later_record_names_the_same_record_and_field_as_row_by_row(tmp_path, monkeypatch):
    seed(scale=0.2)
    dictionary = Dictionary.objects.order_by("pk").first()
    entries = list(DictionaryEntry.objects.order_by("pk")[:40])
    for entry in (entries[30], entries[12]):  # the earlier record must be the one named
        entry.value = "write to jane.doe@example.org"
        entry.save(update_fields=["value"])
    assert dictionary is not None
    messages = _refusals_on_both_paths(tmp_path, monkeypatch)
    assert messages[0] == messages[1] and "dictionary_entries record 13, field 'value'" in messages[0]


def _refusals_on_both_paths(tmp_path, monkeypatch) -> list[str]:
    """The scanner's refusal of the server-rendered export, then of the row-by-row one; neither writes a file."""
    messages = []
    for path in (tmp_path / "server.jsonl", tmp_path / "python.jsonl"):
        with pytest.raises(PersonalDataFound) as caught:
            export_data(entities=None, output=path, fmt="jsonl", anonymize=True)
        assert not path.exists()
        messages.append(str(caught.value))
        _row_by_row(monkeypatch)
    return messages


def _rendered_by_the_server() -> list[str]:
    """The entities an anonymized export of everything masks in SQL, by their declarations."""
    anonymizer, scanner = Anonymizer(), PiiScanner()
    for entity in ENTITIES.values():
        scanner.prepare(entity)
    connector = get_connector()
    masking = sql_masking_for(connector, anonymizer)
    return [
        name for name, entity in ENTITIES.items() if masked_columns(connector, entity, masking, anonymizer, scanner)
    ]


@pytest.mark.django_db  # the key goes into a temporary table of the session
def test_every_declared_entity_is_masked_by_the_server():
    assert _rendered_by_the_server() == list(ENTITIES)


def _plant_people_and_files() -> None:
    """Values at the edges of each rule: spaces around an address, a username that is an address, blank and
    NULL values, file names with odd, upper-case, double and newline-ended extensions, IPv6."""
    people = [
        {"username": "ann.jones", "first_name": "Ann", "last_name": "Jones", "email": " Ann@Example.org\t"},
        {"username": "ann@example.org", "first_name": "", "last_name": "Jones", "email": "ann@example.org"},
        {
            "username": "  spaced  ",
            "first_name": "Zoë",
            "last_name": "Ørsted",
            "email": "",
            "phone": "+44 20 7946 0000",
        },
        {"username": "nomail", "first_name": "", "last_name": "", "email": "", "phone": ""},
        {"username": "ünïcode@exämple.org", "first_name": "Ä", "last_name": "Ö", "email": "ÜNÏ@exämple.org"},
    ]
    users = [User.objects.create(**person) for person in people]
    names = [
        "report.PDF",
        "archive.tar.gz",
        "noextension",
        "cv.pdf\n",
        "scan.AnnJones1984",
        ".bashrc",
        "x.",
        "a.b.c.txt",
    ]
    for index, name in enumerate(names):
        StoredFile.objects.create(
            name=name, storage_path=f"u/{index}/{name}", content_type="application/pdf", size=index,
            sha256="" if index % 3 == 0 else f"{index:064x}", entity_type="core.user", entity_id=users[0].pk,
        )  # fmt: skip
    for index, address in enumerate(["2001:db8::8a2e:370:7334", "203.0.113.9", "::1", None]):
        AuditLog.objects.create(
            actor=users[index], action="update", entity_type="core.user", entity_id=users[index].pk,
            timestamp="2025-01-01T00:00:00Z", changes={"a": [1, 2]}, ip_address=address,
        )  # fmt: skip
    Concept.objects.create(code="C-1", name="Plain name", description="Ünïcode ☃ text\nwith lines")
    Concept.objects.create(code="C-2", name="Empty description", description="")


@pytest.mark.django_db
def test_the_server_masks_planted_edge_values_as_python_does(tmp_path, monkeypatch):
    seed(scale=0.05)
    _plant_people_and_files()
    on_server, in_python = tmp_path / "server.jsonl", tmp_path / "python.jsonl"
    result = export_data(entities=None, output=on_server, fmt="jsonl", anonymize=True)
    _row_by_row(monkeypatch)
    reference = export_data(entities=None, output=in_python, fmt="jsonl", anonymize=True)
    assert _records(on_server) == _records(in_python)
    assert result.scanned_strings == reference.scanned_strings > 0
    names = [item["data"]["name"] for item in _records(on_server) if item["entity"] == "stored_files"]
    assert any(name.endswith(".pdf") for name in names) and any(name.endswith(".txt") for name in names)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("planted", "found"),
    [
        ("write to jo.smith+x@corp.example.org", "an email address"),
        ("call +44 20 7946 0958", "a phone number"),
        ("SSN 078-05-1120", "a national id number"),
        ("NI number AB 12 34 56 C", "a national id number"),
        ("card 4111 1111 1111 1111", "a card number"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "an IBAN"),
        ("seen from 203.0.113.9", "an IP address"),
        ("or 2001:db8::8a2e:370:7334", "an IP address"),
        ("ask Zebulonia Krzywoblocka", "a real person's name"),
        ("ping zk.user today", "a real identity value"),
    ],
)
def test_personal_data_planted_in_kept_text_is_refused_the_same_way_on_both_paths(
    tmp_path, monkeypatch, planted, found
):
    # given a real user (masked earlier in the export) and the planted value in a later concept's name
    seed(scale=0.2)
    User.objects.create(username="zk.user", first_name="Zebulonia", last_name="Krzywoblocka", email="z@realmail.test")
    concepts = list(Concept.objects.order_by("pk")[:6])
    concepts[4].name = planted
    concepts[4].save(update_fields=["name"])
    messages = _refusals_on_both_paths(tmp_path, monkeypatch)
    assert messages[0] == messages[1]
    assert f"concepts record 5, field 'name' holds {found}" in messages[0]


@pytest.mark.django_db
def test_values_masked_once_per_distinct_value_are_looked_up_as_python_masks_them(tmp_path, monkeypatch):
    # given the planted edge values, and every value-only rule's column masked by lookup whatever it repeats
    seed(scale=0.05)
    _plant_people_and_files()
    StoredFile.objects.create(
        name="it's 100% mine.pdf", storage_path="a'b%c", content_type="", size=1, sha256="'%",
        entity_type="core.user", entity_id=1,
    )  # fmt: skip
    monkeypatch.setattr(masked_copy, "LOOKUP_MIN_REPEATS", 0)
    lookups = []
    original = masked_copy._with_lookups
    monkeypatch.setattr(masked_copy, "_with_lookups", lambda *args: lookups.append(result := original(*args)) or result)
    on_server, in_python = tmp_path / "server.jsonl", tmp_path / "python.jsonl"
    export_data(entities=None, output=on_server, fmt="jsonl", anonymize=True)
    assert any("jsonb_object_agg(" in column for columns, _params in lookups for column in columns)
    _row_by_row(monkeypatch)
    export_data(entities=None, output=in_python, fmt="jsonl", anonymize=True)
    assert _records(on_server) == _records(in_python)


def _scans_in_background(monkeypatch) -> list[str]:
    """Records the name of the thread each server-rendered entity's scan ran in."""
    threads = []
    original = masked_copy.scan_kept_values

    def recorded(scanner, queryset, entity):
        threads.append(threading.current_thread().name)
        return original(scanner, queryset, entity)

    monkeypatch.setattr(masked_copy, "scan_kept_values", recorded)  # the background scan's
    monkeypatch.setattr(exports, "scan_kept_values", recorded)  # the scan in line
    return threads


@pytest.mark.django_db(transaction=True)  # committed rows: the scan's own connection must see them
def test_the_scan_beside_the_copies_counts_the_same_strings_as_row_by_row(tmp_path, monkeypatch):
    seed(scale=0.05)
    _plant_people_and_files()
    threads = _scans_in_background(monkeypatch)
    on_server, in_python = tmp_path / "server.jsonl", tmp_path / "python.jsonl"
    result = export_data(entities=None, output=on_server, fmt="jsonl", anonymize=True)
    assert threads and set(threads) == {"dbops-pii-scan"}
    _row_by_row(monkeypatch)
    reference = export_data(entities=None, output=in_python, fmt="jsonl", anonymize=True)
    assert _records(on_server) == _records(in_python)
    assert result.scanned_strings == reference.scanned_strings > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("entity", "planted", "found"),
    [
        ("concepts", "ask Zebulonia Krzywoblocka", "a real person's name"),  # identities remembered first
        ("concepts", "card 4111 1111 1111 1111", "a card number"),
        ("audit_logs", "core.user 203.0.113.9", "an IP address"),  # the last entity: after every COPY before
    ],
)
def test_the_scan_beside_the_copies_refuses_as_row_by_row(tmp_path, monkeypatch, entity, planted, found):
    # given a real user and the planted value in a later record's kept field
    seed(scale=0.2)
    User.objects.create(username="zk.user", first_name="Zebulonia", last_name="Krzywoblocka", email="z@realmail.test")
    if entity == "concepts":
        record, field = Concept.objects.order_by("pk")[3], "name"
    else:
        record, field = AuditLog.objects.order_by("pk")[3], "entity_type"
    setattr(record, field, planted)
    record.save(update_fields=[field])
    threads = _scans_in_background(monkeypatch)
    messages = _refusals_on_both_paths(tmp_path, monkeypatch)
    assert "dbops-pii-scan" in threads
    assert messages[0] == messages[1]
    assert f"{entity} record 4, field '{field}' holds {found}" in messages[0]


@pytest.mark.django_db
def test_the_scan_stays_in_line_inside_a_callers_transaction(tmp_path, monkeypatch):
    # another connection would not see the uncommitted rows of this test's transaction
    seed(scale=0.02)
    threads = _scans_in_background(monkeypatch)
    export_data(entities=None, output=tmp_path / "server.jsonl", fmt="jsonl", anonymize=True)
    assert threads and set(threads) == {threading.current_thread().name}


class _RecordingCursor(psycopg2.extensions.cursor):
    """Every statement text the session sends, COPY included."""

    sent: ClassVar[list[str]] = []

    def execute(self, query, vars=None):  # noqa: A002 - psycopg2's own name
        self.sent.append(self.mogrify(query, vars).decode() if vars is not None else str(query))
        return super().execute(query, vars)

    def copy_expert(self, sql, file, size=8192):
        self.sent.append(str(sql))
        return super().copy_expert(sql, file, size)


@pytest.mark.django_db
def test_the_key_never_appears_in_a_statement_sent_to_the_server(tmp_path, monkeypatch):
    # A statement's text shows in pg_stat_activity, in the log of a failing statement and in auto_explain
    seed(scale=0.02)
    _plant_people_and_files()
    anonymizer = Anonymizer()
    secrets = [anonymizer.key.hex(), *(pad.hex() for pad in hmac_pads(anonymizer.key))]
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "cursor_factory", _RecordingCursor)
    _RecordingCursor.sent.clear()
    export_data(entities=None, output=tmp_path / "server.jsonl", fmt="jsonl", anonymize=True)
    sent = "\n".join(_RecordingCursor.sent)
    assert "sha256(" in sent and "COPY (" in sent  # the masking ran on the server
    assert not [secret for secret in secrets if secret in sent]
    assert anonymizer.key.decode() not in sent
    with connection.cursor() as cursor:  # and the session forgets the key afterwards
        cursor.execute("SELECT to_regclass('pg_temp.dbops_masking_key')")
        assert cursor.fetchone() == (None,)


@pytest.mark.django_db
def test_real_values_of_a_looked_up_column_never_appear_in_a_statement(tmp_path, monkeypatch):
    # Audit logs repeating a few IPs are masked once per distinct value; the real -> fake lookup used to be a
    # jsonb literal in the COPY statement, real IPs and all.
    seed(scale=0.02)
    real_ips = [f"198.51.100.{number}" for number in range(10, 15)]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditlog SET ip_address = ('198.51.100.' || (id % 5 + 10))::inet")
    monkeypatch.setattr(masked_copy, "LOOKUP_MIN_REPEATS", 0)  # a small seed repeats too little to pay
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "cursor_factory", _RecordingCursor)
    _RecordingCursor.sent.clear()
    target = tmp_path / "server.jsonl"
    export_data(entities=["audit_logs"], output=target, fmt="jsonl", anonymize=True)
    sent = "\n".join(_RecordingCursor.sent)
    assert "jsonb_object_agg(" in sent  # the column was masked by lookup
    assert not [ip for ip in real_ips if ip in sent]
    exported = target.read_text()
    assert not [ip for ip in real_ips if ip in exported]
    ips = {json.loads(line)["data"]["ip_address"] for line in exported.splitlines()[1:-1]}
    assert len(ips) == len(real_ips)  # one fake per real IP, as before


@pytest.mark.django_db(transaction=True)
def test_lookups_work_in_the_read_only_consistent_read_of_an_export_of_its_own(tmp_path, monkeypatch):
    # Outside a caller's transaction the export reads in a read-only transaction, where CREATE (even of a
    # temporary table) is refused: the lookup must live inside the statement.
    seed(scale=0.02)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditlog SET ip_address = ('198.51.100.' || (id % 5 + 10))::inet")
    monkeypatch.setattr(masked_copy, "LOOKUP_MIN_REPEATS", 0)
    lookups = []
    original = masked_copy._with_lookups
    monkeypatch.setattr(masked_copy, "_with_lookups", lambda *args: lookups.append(result := original(*args)) or result)
    target = tmp_path / "server.jsonl"
    result = export_data(entities=["audit_logs"], output=target, fmt="jsonl", anonymize=True)
    assert result.total_rows == AuditLog.objects.count() > 0
    assert any("jsonb_object_agg(" in column for columns, _params in lookups for column in columns)
    assert "198.51.100." not in target.read_text()
