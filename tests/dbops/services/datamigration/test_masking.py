"""Masking rules declared per field, the personal-data scanner, one pseudonym per person, k-anonymity.
Every refusal writes no file and leaves the database as it was."""

from __future__ import annotations

import copy
import json
import re
import zipfile
from datetime import UTC, datetime

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection

from dbops.exceptions import AnonymizationFailed, AnonymizationRuleMissing, KAnonymityTooLow, PersonalDataFound
from dbops.services.datamigration.anonymization import Anonymizer
from dbops.services.datamigration.entities import ENTITIES
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.masking_rules import RuleError, rule_parse
from dbops.services.datamigration.pii_scan import personal_data_in
from multipult.core.models import AuditLog, Dictionary, DictionaryEntry, Role, StoredFile, User
from tests.commands import command_error, run_command
from tests.dbops.services.datamigration.helpers import fingerprint, seed

pytestmark = pytest.mark.django_db


def _records(path) -> dict[str, list[dict]]:
    by_entity: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines()[1:-1]:
        item = json.loads(line)
        by_entity.setdefault(item["entity"], []).append(item["data"])
    return by_entity


def _with_rules(settings, entity: str, **rules: str) -> None:
    """The project's declarations with these rules of one entity changed (the registry rebuilds)."""
    declarations = copy.deepcopy(settings.DBOPS["ENTITIES"])
    for declaration in declarations:
        if declaration["name"] == entity:
            declaration["anonymize"].update(rules)
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": declarations}


# --- the rules -------------------------------------------------------------------------------------------


def test_rule_texts_parse_and_unknown_ones_name_the_rules_that_exist():
    assert str(rule_parse("fake:email")) == "fake:email" and str(rule_parse("email")) == "fake:email"
    assert str(rule_parse("generalize:range:10")) == "generalize:range:10" and rule_parse("keep").keeps
    for wrong in ("scramble", "fake:shoe_size", "generalize:range:0", "hash:md5", "generalize:week"):
        with pytest.raises(RuleError, match="unknown rule .*rules: keep, fake:username"):
            rule_parse(wrong)


def test_hash_mask_null_and_generalize_change_the_exported_values(tmp_path, settings):
    # given a user and a file, and rules of each kind on their columns
    joined = datetime(2024, 5, 17, 13, 45, tzinfo=UTC)
    user = User.objects.create(username="ann", email="ann@realmail.test", date_joined=joined, phone="+44 20 7946 0000")
    StoredFile.objects.create(
        name="ann-cv.pdf", storage_path="u/ann/cv.pdf", content_type="application/pdf", size=123_456,
        sha256="ab" * 32, entity_type="core.user", entity_id=user.pk,
    )  # fmt: skip
    _with_rules(settings, "users", phone="mask", date_joined="generalize:year")
    _with_rules(settings, "stored_files", size="generalize:range:1000", content_type="null")
    target = tmp_path / "masked.jsonl"
    # when exported anonymized
    export_data(entities="users,stored_files", output=target, fmt="jsonl", anonymize=True)
    records = _records(target)
    (exported_user,) = [u for u in records["users"] if u["id"] == user.pk]
    (exported_file,) = records["stored_files"]
    # then each column shows its rule's output
    assert exported_user["phone"] == "+" + "*" * 15  # the first character, then one star per character
    assert exported_user["date_joined"].startswith("2024-01-01T00:00:00")
    assert exported_file["size"] == 123_000 and exported_file["content_type"] == ""
    assert exported_file["sha256"] != "ab" * 32 and len(exported_file["sha256"]) == 32
    assert exported_file["name"].endswith(".pdf") and "ann" not in exported_file["name"] + exported_file["storage_path"]


def test_explain_prints_the_rule_of_every_exported_column():
    output = run_command(
        "export_data", "--entities", "users,stored_files", "--format", "csv", "--anonymize", "--explain"
    )
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in output.splitlines() if line.strip()}
    assert lines["users.email"] == "fake:email" and lines["users.date_joined"] == "generalize:month"
    assert lines["stored_files.sha256"] == "hash" and lines["users.is_staff"] == "exported as is"
    assert "users.password" not in lines  # excluded columns are not exported at all


def test_a_free_text_column_without_a_rule_is_refused_whatever_its_name(tmp_path, settings):
    # 'key' of a dictionary entry does not look personal by its name; it is free text all the same
    declarations = copy.deepcopy(settings.DBOPS["ENTITIES"])
    for declaration in declarations:
        if declaration["name"] == "dictionary_entries":
            del declaration["anonymize"]["key"]
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": declarations}
    message = command_error(
        "export_data", "--entities", "dictionaries", "--format", "jsonl", "--anonymize", "--explain",
        match="no rule for dictionary_entries.key",
    )  # fmt: skip
    assert "dictionary_entries.value" not in message
    with pytest.raises(Exception, match=r"dictionary_entries\.key"):
        export_data(entities="dictionaries", output=tmp_path / "x.jsonl", fmt="jsonl", anonymize=True)
    assert not (tmp_path / "x.jsonl").exists()


# --- the scanner -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("write to jo.smith+x@corp.example.org please", "an email address"),
        ("card 4111 1111 1111 1111 on file", "a card number"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "an IBAN"),
        ("SSN 078-05-1120", "a national id number"),
        ("NI number AB 12 34 56 C", "a national id number"),
        ("seen from 203.0.113.9", "an IP address"),
        ("or 2001:db8::8a2e:370:7334", "an IP address"),
        ("call +44 20 7946 0958", "a phone number"),
    ],
)
def test_the_scanner_finds_each_kind_of_personal_data(text, found):
    assert personal_data_in(text) == found


@pytest.mark.parametrize(
    "text",
    ["order 4111 1111 1111 1112", "ISO 8601 2025-01-27 12:00:00", "version 1.2.3", "GB82 WEST", "ICD-10 code A01"],
)
def test_the_scanner_lets_ordinary_text_through(text):
    assert personal_data_in(text) is None  # a failed Luhn check, a date, a version...


def _entry(value: str) -> DictionaryEntry:
    dictionary = Dictionary.objects.create(name="Contacts")
    return DictionaryEntry.objects.create(dictionary=dictionary, key="k", value=value)


@pytest.mark.parametrize(
    "value", ["mail boss@realmail.test", "Card 4111-1111-1111-1111", "IBAN DE89370400440532013000"]
)
def test_personal_data_in_a_kept_column_fails_the_export_and_writes_nothing(tmp_path, value):
    entry = _entry(value)
    state, target = fingerprint(), tmp_path / "x.jsonl"
    with pytest.raises(PersonalDataFound, match=r"dictionary_entries record 1, field 'value' holds") as caught:
        export_data(entities="dictionaries", output=target, fmt="jsonl", anonymize=True)
    assert value not in str(caught.value)  # the message names where, never what
    assert not target.exists() and list(tmp_path.iterdir()) == [] and fingerprint() == state
    assert entry.pk  # the row is there, untouched


@pytest.mark.parametrize("fmt", ["jsonl", "json"])  # rendered by the server, row by row in Python
@pytest.mark.parametrize(
    ("entities", "where", "planted_in"),
    [
        ("users,dictionaries", None, "dictionary_entries"),
        ("dictionaries", None, "dictionary_entries"),  # the users are not exported at all
        ("users,dictionaries", ["users.id=0"], "dictionary_entries"),  # nor the one named
        (None, None, "roles"),  # roles are exported before users
    ],
    ids=["users-first", "users-left-out", "users-filtered-out", "roles-before-users"],
)
def test_a_real_users_name_in_a_kept_column_is_found_whatever_the_export_holds(
    tmp_path, fmt, entities, where, planted_in
):
    User.objects.create(username="zk.user", first_name="Zebulonia", last_name="Krzywoblocka", email="z@realmail.test")
    if planted_in == "roles":
        Role.objects.create(name="escalation", description="Escalate to Zebulonia Krzywoblocka")
    else:
        _entry("Ask Zebulonia Krzywoblocka about this")
    state, target = fingerprint(), tmp_path / f"x.{fmt}"
    with pytest.raises(PersonalDataFound, match=rf"{planted_in} record 1, field '\w+' holds a real person's name"):
        export_data(entities=entities, where=where, output=target, fmt=fmt, anonymize=True)
    assert list(tmp_path.iterdir()) == [] and fingerprint() == state


def test_allow_pii_in_accepts_one_field_consciously(tmp_path):
    _entry("mail boss@realmail.test")
    message = command_error(
        "export_data", "--entities", "dictionaries", "--format", "jsonl", "--anonymize",
        "--output", str(tmp_path / "x.jsonl"), match="Pass --allow-pii-in ENTITY.FIELD",
    )  # fmt: skip
    assert "dictionary_entries record 1, field 'value'" in message
    run_command(
        "export_data", "--entities", "dictionaries", "--format", "jsonl", "--anonymize",
        "--output", str(tmp_path / "x.jsonl"), "--allow-pii-in", "dictionary_entries.value",
    )  # fmt: skip
    assert "boss@realmail.test" in (tmp_path / "x.jsonl").read_text()


# --- one fake person per real person ---------------------------------------------------------------------


def test_username_names_and_email_of_a_record_are_one_fake_person():
    anonymizer = Anonymizer(salt="s")
    fake = anonymizer.apply(
        "users", {"id": 1, "username": "ann.jones", "first_name": "Ann", "last_name": "Jones", "email": "ann@x.org"}
    )
    slug = f"{fake['first_name'].lower()}.{fake['last_name'].lower()}".replace(" ", "").replace("'", "")
    assert fake["email"].startswith(slug + ".") and fake["username"].startswith(slug + ".")
    # a username that is an address becomes that address's fake email
    by_address = anonymizer.apply("users", {"id": 2, "username": "ann@x.org", "email": "ann@x.org"})
    assert by_address["username"] == by_address["email"] == fake["email"]
    # two addresses that differ only in case are two people, with two distinct fakes
    other = anonymizer.apply("users", {"id": 3, "username": "ANN", "email": "ANN@x.org"})
    assert other["email"] != fake["email"]


def test_a_file_name_keeps_only_a_known_extension():
    anonymizer = Anonymizer(salt="s")
    assert anonymizer.apply("stored_files", {"name": "report.pdf"})["name"].endswith(".pdf")
    assert "." not in anonymizer.apply("stored_files", {"name": "scan.AnnJones1984"})["name"]


# --- k-anonymity ------------------------------------------------------------------------------------------


def test_k_anonymity_prints_the_smallest_group_and_refuses_below_the_threshold(tmp_path):
    # given 5 users who joined in May 2024 and one lone staff user
    for index in range(5):
        User.objects.create(
            username=f"u{index}", email=f"u{index}@x.org", date_joined=datetime(2024, 5, index + 1, tzinfo=UTC)
        )
    User.objects.create(
        username="boss", email="boss@x.org", is_staff=True, date_joined=datetime(2024, 5, 9, tzinfo=UTC)
    )
    target = tmp_path / "k.jsonl"
    state = fingerprint()
    # then a 2-anonymous export is refused, naming the entity and the group size, and writes nothing
    with pytest.raises(KAnonymityTooLow, match=r"not 2-anonymous \(users: a group of 1 on date_joined, is_staff"):
        export_data(entities="users", output=target, fmt="jsonl", anonymize=True, k_anonymity=2)
    assert not target.exists() and fingerprint() == state
    # and without the lone staff user the command prints the smallest group, 5
    User.objects.filter(username="boss").delete()
    output = run_command(
        "export_data", "--entities", "users", "--format", "jsonl", "--anonymize", "--k-anonymity", "5",
        "--output", str(target),
    )  # fmt: skip
    assert "k-anonymity of users: the smallest group has 5 record(s)" in output
    message = command_error(
        "export_data", "--entities", "users", "--format", "jsonl", "--k-anonymity", "0", "--dry-run"
    )
    assert "--k-anonymity" in message


def test_seeded_data_exports_anonymized_with_every_rule_and_scan(tmp_path):
    seed(scale=0.3)
    result = export_data(entities=None, output=tmp_path / "all.jsonl", fmt="jsonl", anonymize=True)
    assert result.anonymized and result.scanned_strings > 0


# --- values a rule meets in real databases ---------------------------------------------------------------


def _export_text(path) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return "".join(archive.read(name).decode() for name in archive.namelist())
    return path.read_text()


def test_an_address_with_a_netmask_gets_the_same_fake_in_every_format(tmp_path):
    # inet holds a netmask where something wrote one (Django's field never does): fake:ip must not fail
    log = AuditLog.objects.create(
        action="login", entity_type="core.user", entity_id=1, changes={}, timestamp=datetime(2025, 1, 2, tzinfo=UTC)
    )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditlog SET ip_address = '203.0.113.7/24' WHERE id = %s", [log.pk])
    fakes = {}
    for fmt, name in [("jsonl", "a.jsonl"), ("json", "a.json"), ("csv", "a.zip"), ("sql", "a.sql")]:
        export_data(entities="audit_logs", output=tmp_path / name, fmt=fmt, anonymize=True)
        text = _export_text(tmp_path / name)
        assert "203.0.113" not in text
        fakes[fmt] = set(re.findall(r"\b10\.\d+\.\d+\.\d+\b", text))
    assert len(fakes["jsonl"]) == 1 and all(found == fakes["jsonl"] for found in fakes.values())


def test_fake_ip_on_a_text_column_that_holds_no_address_still_gives_an_address(tmp_path, settings):
    _with_rules(settings, "roles", description="fake:ip")
    Role.objects.create(name="escalation", description="Escalate to the night shift")
    export_data(entities="roles", output=tmp_path / "r.json", fmt="json", anonymize=True)
    (role,) = json.loads((tmp_path / "r.json").read_text())["entities"]["roles"]
    assert re.fullmatch(r"10\.\d+\.\d+\.\d+", role["description"])


def test_a_rule_that_cannot_apply_names_entity_field_and_rule_but_never_the_value(tmp_path, monkeypatch):
    def failing(self, rule, value):
        raise ValueError(f"cannot read {value!r}")  # as ipaddress and datetime do: the value in the message

    monkeypatch.setattr(Anonymizer, "_fake", failing)
    Dictionary.objects.create(name="d", description="Zebulonia's private notes")
    state, target = fingerprint(), tmp_path / "d.json"
    with pytest.raises(AnonymizationFailed, match=r"dictionaries: rule fake:text of field 'description'") as caught:
        export_data(entities="dictionaries", output=target, fmt="json", anonymize=True)
    assert "Zebulonia" not in str(caught.value) and caught.value.__cause__ is None
    assert list(tmp_path.iterdir()) == [] and fingerprint() == state


def test_a_text_primary_key_needs_a_rule(tmp_path, monkeypatch):
    # a session key is a credential: exported as it is only when a rule says keep
    monkeypatch.setattr(Session, "dbops_anonymize", {"session_data": "null"}, raising=False)
    ENTITIES.reset()
    try:
        store = SessionStore()
        store["visits"] = 1
        store.create()
        with pytest.raises(AnonymizationRuleMissing, match=r"sessions\.Session\.session_key"):
            export_data(entities="sessions.Session", output=tmp_path / "s.jsonl", fmt="jsonl", anonymize=True)
        monkeypatch.setattr(Session, "dbops_anonymize", {"session_data": "null", "session_key": "hash"})
        ENTITIES.reset()
        export_data(entities="sessions.Session", output=tmp_path / "s.jsonl", fmt="jsonl", anonymize=True)
        assert store.session_key not in (tmp_path / "s.jsonl").read_text()
    finally:
        ENTITIES.reset()


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_a_column_of_choices_needs_no_rule_but_is_scanned(tmp_path, fmt):
    # The database does not hold a column to its choices: whatever is in it goes out as it is
    AuditLog.objects.create(
        action="m@davis-jo.com", entity_type="core.user", entity_id=1, changes={},
        timestamp=datetime(2025, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    state, target = fingerprint(), tmp_path / f"a.{fmt}"
    with pytest.raises(PersonalDataFound, match=r"audit_logs record 1, field 'action' holds an email address"):
        export_data(entities="audit_logs", output=target, fmt=fmt, anonymize=True)
    assert list(tmp_path.iterdir()) == [] and fingerprint() == state


@pytest.mark.parametrize("allowed", ["dictionary_entries.valeu", "nosuch.value", "valeu"])
def test_allow_pii_in_naming_no_exported_field_is_refused(tmp_path, allowed):
    _entry("mail boss@realmail.test")
    command_error(
        "export_data", "--entities", "dictionaries", "--format", "jsonl", "--anonymize",
        "--output", str(tmp_path / "x.jsonl"), "--allow-pii-in", allowed, match=f"{allowed} is no field",
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
