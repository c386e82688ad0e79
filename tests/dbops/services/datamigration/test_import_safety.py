"""Imports that never lose a value or let one in that should not be: upserts that keep what a record
leaves out, privilege fields refused, model validators and choices on both paths, deep JSON, CSV
manifests that point outside their folder. Each bad input leaves the database exactly as it was."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import connections, transaction

from dbops.engines import get_connector
from dbops.exceptions import (
    DataMigrationError,
    ImportFormatError,
    ImportValidationError,
    PrivilegedImportRefused,
    SnapshotError,
)
from dbops.models import DataTransferRun
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from dbops.services.datamigration.privileges import privilege_flags, rows_grant_privileges
from dbops.services.datamigration.snapshots import snapshot_discard, snapshot_rollback
from multipult.core.models import ApiToken, AuditLog, Concept, StoredFile, User
from tests.dbops.services.datamigration.helpers import (
    EXPORT_HEADER,
    fingerprint,
    jsonl_write,
    seed,
    user_record,
    wipe_domain,
)

pytestmark = pytest.mark.django_db

HEADER = EXPORT_HEADER
_jsonl = jsonl_write


def _user(**overrides) -> dict:
    return user_record(**{"phone": "+1 555 0100", **overrides})


def _log(**overrides) -> dict:
    record = {"id": 1, "actor": None, "action": "login", "entity_type": "core.user", "entity_id": 1,
              "timestamp": "2025-01-01T00:00:00Z", "changes": {}, "ip_address": "10.0.0.1"}  # fmt: skip
    record.update(overrides)
    return record


# --- upsert keeps what a record leaves out ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_upsert_writes_only_the_fields_each_record_carries(tmp_path, fmt):
    # given two existing users
    User.objects.create(id=900001, username="one", first_name="Ann", last_name="One", phone="111", email="a@x.org")
    User.objects.create(id=900002, username="two", first_name="Bob", last_name="Two", phone="222", email="b@x.org")
    # and a file where record 1 has every field and record 2 leaves out first_name, last_name and phone
    full = _user(id=900001, username="one", first_name="Anna", last_name="Uno", phone="999", email="a@x.org")
    partial = {key: value for key, value in _user(id=900002, username="two", email="b2@x.org").items()
               if key not in ("first_name", "last_name", "phone")}  # fmt: skip
    path = tmp_path / f"users.{fmt}"
    if fmt == "jsonl":
        _jsonl(path, [("users", full), ("users", partial)])
    else:
        path.write_text(json.dumps({**HEADER, "entities": {"users": [full, partial]}}))
    # when it is upserted, first as a dry run
    dry = import_data(input_path=path, fmt=fmt, mode="upsert", dry_run=True)
    assert dry.warnings == [
        "users: 1 existing row(s) updated from records without first_name, last_name, phone; "
        "those fields keep their current values."
    ]
    result = import_data(input_path=path, fmt=fmt, mode="upsert")
    # then record 2's omitted fields keep their values and the fields it carries are written
    assert result.entities[0].updated == 2 and result.warnings == dry.warnings
    two = User.objects.get(pk=900002)
    assert (two.first_name, two.last_name, two.phone, two.email) == ("Bob", "Two", "222", "b2@x.org")
    one = User.objects.get(pk=900001)
    assert (one.first_name, one.last_name, one.phone) == ("Anna", "Uno", "999")


def test_upsert_of_a_new_row_from_a_partial_record_takes_the_defaults(tmp_path):
    partial = {key: value for key, value in _user().items() if key not in ("first_name", "phone")}
    result = import_data(input_path=_jsonl(tmp_path / "u.jsonl", [("users", partial)]), fmt="jsonl", mode="upsert")
    assert result.warnings == [] and result.entities[0].created == 1
    assert User.objects.filter(pk=900001, first_name="", phone="").exists()


# --- privileges -----------------------------------------------------------------------------------------


def test_privilege_flags_and_memberships_are_found_by_what_they_are():
    assert privilege_flags(User) == {"is_superuser", "is_staff"}
    assert rows_grant_privileges(User.groups.through) and rows_grant_privileges(User.user_permissions.through)
    assert not rows_grant_privileges(User.roles.through)  # MultiPULT declares its roles privileged itself
    assert privilege_flags(AuditLog) == frozenset()
    # What a permission is, a logged-in session, an account's API token: rows that grant by existing
    assert rows_grant_privileges(Permission) and rows_grant_privileges(ContentType) and rows_grant_privileges(Session)
    assert rows_grant_privileges(ApiToken)
    assert not any(rows_grant_privileges(model) for model in (AuditLog, Concept, Group, User, StoredFile))


def test_rewriting_a_permission_is_refused_unless_allowed(tmp_path):
    # user 1 holds add_logentry; a file redefining that permission as change_user would hand it over
    user = User.objects.create(username="holder")
    granted = Permission.objects.get(codename="add_logentry")
    user.user_permissions.add(granted)
    target = tmp_path / "p.sql"
    user_type = ContentType.objects.get_for_model(User)
    row = f"({granted.pk}, 'Can change user', {user_type.pk}, 'change_user')"
    target.write_text(f"INSERT INTO auth_permission (id, name, content_type_id, codename) VALUES {row};\n")  # noqa: S608
    state = fingerprint()
    with pytest.raises(PrivilegedImportRefused, match="grant privileges"):
        import_data(input_path=target, fmt="sql", mode="upsert")
    assert fingerprint() == state
    assert Permission.objects.get(pk=granted.pk).codename == "add_logentry"


def test_an_api_token_for_someone_is_refused_unless_allowed(tmp_path):
    staff = User.objects.create(username="staff.member", is_staff=True)
    digest = hashlib.sha256(b"mpt_ATTACKER1_knownsecret").hexdigest()
    token = {"id": 7001, "user": staff.pk, "name": "ci", "prefix": "mpt_ATTACKER", "digest": digest,
             "created_at": "2025-01-01T00:00:00+00:00", "last_used_at": None, "revoked_at": None}  # fmt: skip
    path = _jsonl(tmp_path / "t.jsonl", [("core.ApiToken", token)])
    state = fingerprint()
    with pytest.raises(PrivilegedImportRefused):
        import_data(input_path=path, fmt="jsonl")
    assert fingerprint() == state and not ApiToken.objects.exists()


@pytest.mark.parametrize(
    "record",
    [_user(is_superuser=True), _user(is_staff="true"), _user(is_superuser="Yes")],
    ids=["superuser", "staff-text", "superuser-yes"],
)
def test_a_record_that_grants_a_privilege_is_refused_unless_allowed(tmp_path, record):
    path = _jsonl(tmp_path / "u.jsonl", [("users", _user(id=900002, username="plain")), ("users", record)])
    state = fingerprint()
    with pytest.raises(PrivilegedImportRefused, match=r"users record 2, field 'is_(superuser|staff)': grants a"):
        import_data(input_path=path, fmt="jsonl")
    with pytest.raises(PrivilegedImportRefused):
        import_data(input_path=path, fmt="jsonl", dry_run=True)
    assert fingerprint() == state
    import_data(input_path=path, fmt="jsonl", allow_privileged=True)
    assert User.objects.get(pk=900001).is_superuser or User.objects.get(pk=900001).is_staff


@pytest.mark.parametrize(
    ("fmt", "name"), [("jsonl", "x.jsonl"), ("json", "x.json"), ("csv", "x.zip"), ("sql", "x.sql")]
)
def test_staff_users_and_role_memberships_are_refused_in_every_format(tmp_path, fmt, name):
    seed(scale=0.2)
    User.objects.filter(pk=User.objects.order_by("pk").values("pk")[:1]).update(is_staff=True)
    target = tmp_path / name
    export_data(entities="users", output=target, fmt=fmt)
    wipe_domain()
    state = fingerprint()
    with pytest.raises(PrivilegedImportRefused) as refused:
        import_data(input_path=target, fmt=fmt)
    assert "field 'is_staff': grants a privilege" in str(refused.value)
    if fmt in ("json", "jsonl"):  # the formats that carry the memberships along
        assert "user_roles record 1: a membership that grants privileges" in str(refused.value)
    assert fingerprint() == state


def test_demoting_is_not_a_privilege(tmp_path):
    User.objects.create(id=900001, username="ok.user", is_staff=True, is_superuser=True)
    path = _jsonl(tmp_path / "u.jsonl", [("users", _user())])
    import_data(input_path=path, fmt="jsonl", mode="upsert")
    assert not User.objects.get(pk=900001).is_superuser


# --- the model's own rules, on the fast path as on the checking one ---------------------------------------


def test_validators_and_choices_are_refused_on_the_fast_and_the_checking_path(tmp_path):
    # record 1 sets the fast path's shape; records 2-3 fit it (fast path); 4 has an extra field (checking path)
    records = [
        ("users", _user()),
        ("users", _user(id=900002, username="b", email="not-an-email")),
        ("audit_logs", _log()),
        ("audit_logs", _log(id=2, action="pwn")),
        ("audit_logs", {**_log(id=3, action="pwn"), "bogus": 1}),
    ]
    path = _jsonl(tmp_path / "v.jsonl", records)
    state = fingerprint()
    with pytest.raises(ImportValidationError) as refused:
        import_data(input_path=path, fmt="jsonl")
    message = str(refused.value)
    assert "users record 2, field 'email': 'not-an-email': Enter a valid email address." in message
    assert "audit_logs record 2, field 'action': 'pwn' is not one of the choices (backup, create" in message
    assert "audit_logs record 3, field 'action': 'pwn' is not one of the choices" in message
    assert "audit_logs record 3, field 'bogus': unknown field" in message
    assert fingerprint() == state


def test_csv_and_sql_values_pass_the_same_rules(tmp_path):
    seed(scale=0.1)
    target = tmp_path / "logs.sql"
    export_data(entities="audit_logs", output=target, fmt="sql")
    text = target.read_text()
    first = next(line for line in text.splitlines() if line.startswith("INSERT"))
    action = next(choice for choice in AuditLog.Action.values if f"'{choice}'" in first)
    target.write_text(text.replace(first, first.replace(f"'{action}'", "'pwn'", 1)))
    wipe_domain()
    state = fingerprint()
    with pytest.raises(ImportValidationError, match="field 'action': 'pwn' is not one of the choices"):
        import_data(input_path=target, fmt="sql")
    assert fingerprint() == state


# --- deep JSON --------------------------------------------------------------------------------------------

DEPTH = 100_000


def _deep(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "sql"])
def test_json_nested_100000_levels_is_one_clear_error_and_leaves_no_run(tmp_path, fmt):
    seed(scale=0.1)
    if fmt == "jsonl":
        path = tmp_path / "deep.jsonl"
        path.write_text(json.dumps(HEADER) + '\n{"entity":"audit_logs","data":{"changes":' + _deep() + "}}\n")
    elif fmt == "json":
        path = tmp_path / "deep.json"
        path.write_text(json.dumps(HEADER)[:-1] + ',"entities":{"audit_logs":[{"changes":' + _deep() + "}]}}")
    elif fmt == "csv":
        path = tmp_path / "deep"
        export_data(entities="audit_logs", output=path, fmt="csv")
        logs = path / "audit_logs.csv"
        lines = logs.read_text().splitlines()
        header = lines[0].split(",")
        cells = ["" for _ in header]
        cells[header.index("changes")] = '"' + _deep(60_000) + '"'  # a CSV cell holds 131,072 characters at most
        logs.write_text("\n".join([lines[0], ",".join(cells)]) + "\n")
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["entities"]["audit_logs"]["rows"] = 1
        (path / "manifest.json").write_text(json.dumps(manifest))
    else:
        path = tmp_path / "deep.sql"
        export_data(entities="audit_logs", output=path, fmt="sql")
        text = path.read_text()
        first = next(line for line in text.splitlines() if line.startswith("INSERT"))
        deep = re.sub(r"'\{[^']*\}'", lambda match: "'" + _deep() + "'", first, count=1)
        assert deep != first, first
        path.write_text(text.replace(first, deep))
    state, runs = fingerprint(), DataTransferRun.objects.count()
    with pytest.raises(ImportFormatError, match="(?i)nested too deeply") as refused:
        import_data(input_path=path, fmt=fmt)
    assert "Traceback" not in str(refused.value) and len(str(refused.value)) < 400
    assert fingerprint() == state and DataTransferRun.objects.count() == runs


# --- CSV manifests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("named", ["/etc/passwd", "../outside.csv", "sub/roles.csv", "..", 7])
def test_a_csv_manifest_may_only_name_files_of_its_own_folder(tmp_path, named):
    seed(scale=0.1)
    folder = tmp_path / "csv"
    export_data(entities="roles", output=folder, fmt="csv")
    (tmp_path / "outside.csv").write_text((folder / "roles.csv").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["entities"]["roles"]["file"] = named
    (folder / "manifest.json").write_text(json.dumps(manifest))
    wipe_domain()
    state = fingerprint()
    with pytest.raises(ImportFormatError, match="it may only name files inside its own folder"):
        import_data(input_path=folder, fmt="csv")
    assert fingerprint() == state


def test_a_symlink_out_of_the_folder_is_refused_too(tmp_path):
    seed(scale=0.1)
    folder = tmp_path / "csv"
    export_data(entities="roles", output=folder, fmt="csv")
    (tmp_path / "outside.csv").write_text((folder / "roles.csv").read_text())
    (folder / "roles.csv").unlink()
    (folder / "roles.csv").symlink_to(tmp_path / "outside.csv")
    wipe_domain()
    with pytest.raises(ImportFormatError, match="may only name files inside its own folder"):
        import_data(input_path=folder, fmt="csv")


def test_a_manifest_that_is_a_symlink_out_of_the_folder_is_refused(tmp_path):
    seed(scale=0.1)
    folder = tmp_path / "csv"
    export_data(entities="roles", output=folder, fmt="csv")
    (tmp_path / "outside").mkdir()
    (folder / "manifest.json").rename(tmp_path / "outside" / "manifest.json")
    (folder / "manifest.json").symlink_to(tmp_path / "outside" / "manifest.json")
    state = fingerprint()
    with pytest.raises(ImportFormatError, match="manifest.json links out of the folder"):
        import_data(input_path=folder, fmt="csv", mode="upsert")
    assert fingerprint() == state


def test_a_zipped_manifest_may_not_name_a_path_either(tmp_path):
    seed(scale=0.1)
    archive = tmp_path / "x.zip"
    export_data(entities="roles", output=archive, fmt="csv")
    with zipfile.ZipFile(archive) as source:
        members = {name: source.read(name) for name in source.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["entities"]["roles"]["file"] = "/etc/passwd"
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(archive, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    wipe_domain()
    with pytest.raises(ImportFormatError, match="may only name files inside the archive"):
        import_data(input_path=archive, fmt="csv")


def test_a_record_without_an_id_is_created_with_a_fresh_one(tmp_path):
    # a file from another system: no ids; the set-based path doubts it, the checking path gives ids
    existing = User.objects.create(username="already.here")
    record = _user(username="from.elsewhere")
    del record["id"]
    path = _jsonl(tmp_path / "u.jsonl", [("users", record)])
    result = import_data(input_path=path, fmt="jsonl")
    assert result.entities[0].created == 1
    assert User.objects.get(username="from.elsewhere").pk > existing.pk


def test_an_upsert_record_may_leave_a_required_field_out_where_it_updates_a_row(tmp_path):
    # Only the fields a record carries are written: the row keeps the rest, required ones included
    log = AuditLog.objects.create(
        action="create", entity_type="core.concept", entity_id=7, changes={"a": 1},
        timestamp=datetime(2025, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    path = _jsonl(tmp_path / "p.jsonl", [("audit_logs", {"id": log.pk, "action": "delete"})])
    result = import_data(input_path=path, fmt="jsonl", mode="upsert")
    assert result.entities[0].updated == 1
    log.refresh_from_db()
    assert (log.action, log.entity_type, log.entity_id, log.changes) == ("delete", "core.concept", 7, {"a": 1})
    assert log.timestamp == datetime(2025, 1, 2, tzinfo=UTC)


def test_an_upsert_record_that_creates_a_row_still_needs_every_required_field(tmp_path):
    log = AuditLog.objects.create(
        action="create", entity_type="core.concept", entity_id=7, changes={}, timestamp=datetime(2025, 1, 2, tzinfo=UTC)
    )
    records = [
        ("audit_logs", {"id": log.pk, "action": "delete"}),
        ("audit_logs", {"id": log.pk + 1000, "action": "login"}),
    ]
    path = _jsonl(tmp_path / "p.jsonl", records)
    state = fingerprint()
    with pytest.raises(
        ImportValidationError,
        match=r"audit_logs record 2, field '\w+': required field is missing \(the record creates a row\)",
    ) as refused:
        import_data(input_path=path, fmt="jsonl", mode="upsert")
    assert "record 1" not in str(refused.value)
    assert fingerprint() == state


def test_an_upsert_that_changes_a_staff_account_needs_allow_privileged(tmp_path):
    # A new email on a staff account, then a password reset, takes the account over
    staff = User.objects.create(username="boss", email="boss@corp.test", is_staff=True)
    plain = User.objects.create(username="plain", email="plain@corp.test")
    unchanged = _jsonl(tmp_path / "same.jsonl", [("users", {"id": staff.pk, "email": "boss@corp.test"})])
    import_data(input_path=unchanged, fmt="jsonl", mode="upsert")  # the same values: nothing to refuse
    records = [
        ("users", {"id": plain.pk, "email": "new@corp.test"}),
        ("users", {"id": staff.pk, "email": "me@evil.test"}),
    ]
    changed = _jsonl(tmp_path / "changed.jsonl", records)
    state = fingerprint()
    with pytest.raises(
        PrivilegedImportRefused, match=r"users record 2: changes a staff or superuser account"
    ) as refused:
        import_data(input_path=changed, fmt="jsonl", mode="upsert")
    assert "record 1" not in str(refused.value) and fingerprint() == state
    import_data(input_path=changed, fmt="jsonl", mode="upsert", allow_privileged=True)
    assert User.objects.get(pk=staff.pk).email == "me@evil.test"
    # Demoted in the same record, the account is no longer one to take over
    demoted = _jsonl(
        tmp_path / "demoted.jsonl", [("users", {"id": staff.pk, "email": "x@corp.test", "is_staff": False})]
    )
    import_data(input_path=demoted, fmt="jsonl", mode="upsert")
    assert not User.objects.get(pk=staff.pk).is_staff


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["jsonl", "json", "sql", "csv"])
def test_a_file_that_cannot_be_read_is_one_line_before_any_run_is_recorded(fmt):
    # /proc/self/mem opens but its first byte cannot be read (EIO): a traceback, and a failed run, before
    state = fingerprint()
    with pytest.raises(ImportFormatError, match=r"mem cannot be read: Input/output error\.$"):
        import_data(input_path="/proc/self/mem", fmt=fmt)
    assert fingerprint() == state


@pytest.mark.django_db(transaction=True)  # the lock is the transaction's: the test's own would hold it
def test_an_import_while_another_runs_is_refused_in_one_line(tmp_path):
    # Two big imports at once deadlocked (one's index rebuild against the other's staging reads) and the
    # loser printed PostgreSQL's deadlock report.
    seed(scale=0.1)
    target = tmp_path / "roles.jsonl"
    export_data(entities="roles", output=target, fmt="jsonl")
    snapshot_id = import_data(input_path=target, fmt="jsonl", mode="upsert", snapshot=True).snapshot_id
    holding, release = threading.Event(), threading.Event()

    def other_import() -> None:  # its own connection, holding the import lock as a running import does
        try:
            with transaction.atomic():
                assert get_connector().import_lock()
                holding.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_import)
    thread.start()
    try:
        assert holding.wait(30)
        state = fingerprint()
        with pytest.raises(DataMigrationError, match=r"^An import or a rollback is running on this database"):
            import_data(input_path=target, fmt="jsonl", mode="upsert")
        with pytest.raises(SnapshotError, match=r"^An import or a rollback is running on this database"):
            snapshot_rollback(snapshot_id=snapshot_id)
        assert fingerprint() == state
    finally:
        release.set()
        thread.join(30)
    import_data(input_path=target, fmt="jsonl", mode="upsert")  # and once it has finished, it runs
    snapshot_discard(snapshot_id=snapshot_id)  # its copy tables outlive the flush of a transaction test
