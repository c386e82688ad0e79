"""The data migration commands end to end, and every bad input of issue 9: one readable message,
a non-zero exit (CommandError), and the database and existing files exactly as they were."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from django.core.management import get_commands, load_command_class

from dbops.models import DataTransferRun, Snapshot
from dbops.services.datamigration import transformations
from multipult.core.models import Concept, User
from tests.commands import command_error, run_command
from tests.dbops.services.backups.conftest import fill_disk, mounts  # noqa: F401  (mounts: fixture)
from tests.dbops.services.datamigration.helpers import fingerprint, jsonl_write, seed, user_record, wipe_domain

pytestmark = pytest.mark.django_db

COMMANDS = ["export_data", "import_data", "list_snapshots", "rollback_migration"]


@pytest.fixture
def exported(tmp_path):
    """A seeded database, a jsonl export of it, and the database emptied (so the file imports cleanly)."""
    seed(scale=0.2)
    path = tmp_path / "all.jsonl"
    run_command("export_data", "--output", str(path), "--format", "jsonl", "--quiet")
    wipe_domain()
    return path


def _lines(path):
    return path.read_text().splitlines()


def _write_jsonl(path, header_from, records):
    return jsonl_write(path, records, header=json.loads(_lines(header_from)[0]))


_user = user_record


@contextmanager
def _registered(name: str, function):
    """The transformation registered under `name` for the block, and gone from the registry after it."""
    transformations.transformation(name)(function)
    try:
        yield
    finally:
        transformations._REGISTRY.pop(name)


def test_every_option_has_help():
    for name in COMMANDS:
        command = load_command_class(get_commands()[name], name)
        parser = command.create_parser("manage.py", name)
        own = [action for action in parser._actions if action.dest not in {"help", "version"}]
        assert all(action.help for action in own), name


def test_export_import_snapshot_list_and_rollback_through_the_commands(exported, tmp_path):
    out = run_command("import_data", "--input", str(exported), "--format", "jsonl", "--dry-run", "--allow-privileged")
    assert "nothing was changed" in out and User.objects.count() == 0
    result = json.loads(
        run_command(
            "import_data", "--input", str(exported), "--format", "jsonl", "--snapshot", "--json", "--allow-privileged"
        )
    )
    assert result["entities"]["users"]["created"] == User.objects.count() > 0
    listed = json.loads(run_command("list_snapshots", "--json"))["snapshots"]
    assert [item["id"] for item in listed] == [result["snapshot_id"]]
    assert listed[0]["row_counts"]["core_user"] == 0 and listed[0]["import_run"] == result["run_id"]
    assert result["snapshot_id"] in run_command("list_snapshots")

    out = run_command("rollback_migration", "--snapshot-id", result["snapshot_id"], "--confirm")
    assert "checksums match" in out
    assert User.objects.count() == 0 and Concept.objects.count() == 0


def test_export_dry_run_and_json_output(tmp_path):
    seed(scale=0.1)
    out = run_command(
        "export_data", "--entities", "concepts", "--format", "csv", "--output", str(tmp_path / "c"), "--dry-run"
    )
    assert "would export" in out and not (tmp_path / "c").exists()
    payload = json.loads(run_command("export_data", "--entities", "concepts", "--dry-run", "--json"))
    assert payload["entities"]["concepts"]["rows"] == Concept.objects.count()


def test_transformations_on_import(exported, tmp_path):
    # a user from another system: full_name instead of first/last, "mail" instead of "email"
    record = _user(email=None)
    del record["first_name"], record["last_name"], record["email"]
    record.update(full_name="Ada Lovelace", mail="  ADA@Example.COM ")
    path = _write_jsonl(tmp_path / "other.jsonl", exported, [("users", record)])
    run_command(
        "import_data", "--input", str(path), "--format", "jsonl",
        "--transform", "split_full_name", "--transform", "normalize_emails",
    )  # fmt: skip
    user = User.objects.get(pk=900001)
    assert (user.first_name, user.last_name, user.email) == ("Ada", "Lovelace", "ada@example.com")
    command_error(
        "import_data", "--input", str(path), "--format", "jsonl", "--transform", "nope", match="Unknown transformation"
    )


def test_a_registered_transformation_can_drop_records(exported, tmp_path):
    def only_staff(entity, record):
        return None if entity == "users" and not record["is_staff"] else record

    with _registered("test_only_staff", only_staff):
        path = _write_jsonl(
            tmp_path / "t.jsonl",
            exported,
            [("users", _user()), ("users", _user(id=900002, username="s", is_staff=True))],
        )
        run_command(
            "import_data",
            "--input",
            str(path),
            "--format",
            "jsonl",
            "--transform",
            "test_only_staff",
            "--allow-privileged",
        )
        assert list(User.objects.values_list("pk", flat=True)) == [900002]


# --- bad input: each leaves the database (and files) exactly as they were ------------------------------


def test_malformed_json(exported, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "multipult-export", "version": 1, "entities": {"users": [{"id": 1,, }]}}')
    state = fingerprint()
    command_error(
        "import_data", "--input", str(bad), "--format", "json", match=r"malformed or truncated JSON at line 1"
    )
    assert fingerprint() == state


@pytest.mark.parametrize(("fmt", "name"), [("jsonl", "t.jsonl"), ("json", "t.json"), ("sql", "t.sql")])
def test_truncated_file(exported, tmp_path, fmt, name):
    full = tmp_path / f"full-{name}"
    # the fixture wiped the data; put it back, export in this format, wipe again
    run_command("import_data", "--input", str(exported), "--format", "jsonl", "--quiet", "--allow-privileged")
    run_command("export_data", "--output", str(full), "--format", fmt, "--quiet")
    wipe_domain()
    cut = tmp_path / name
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    state = fingerprint()
    command_error("import_data", "--input", str(cut), "--format", fmt, match="truncated|malformed")
    # cut exactly at a line end too: still detected
    cut.write_bytes(data[: data.rindex(b"\n", 0, len(data) // 2) + 1])
    command_error("import_data", "--input", str(cut), "--format", fmt, match="truncated|malformed")
    assert fingerprint() == state


def test_truncated_csv_in_a_folder(tmp_path):
    seed(scale=0.2)
    folder = tmp_path / "csv"
    run_command("export_data", "--output", str(folder), "--format", "csv", "--quiet")
    wipe_domain()
    logs = folder / "audit_logs.csv"
    logs.write_text("\n".join(logs.read_text().splitlines()[:10]) + "\n")
    state = fingerprint()
    command_error("import_data", "--input", str(folder), "--format", "csv", match="manifest says")
    assert fingerprint() == state


def test_wrong_format_flag(exported, tmp_path):
    state = fingerprint()
    command_error(
        "import_data",
        "--input",
        str(exported),
        "--format",
        "json",
        match=r"^--format: .*one JSON document per line is the jsonl format",
    )
    command_error("import_data", "--input", str(exported), "--format", "csv", match="needs a .zip archive or a folder")
    command_error("import_data", "--input", str(exported), "--format", "sql", match="not an export_data file")
    command_error("import_data", "--input", str(exported), "--format", "xml", match="invalid choice")
    assert fingerprint() == state


def test_unknown_entity(exported, tmp_path):
    existing = tmp_path / "existing.jsonl"
    existing.write_text("precious")
    message = command_error(
        "export_data", "--entities", "users,widgets", "--output", str(existing), "--format", "jsonl",
        match="Unknown entity: widgets",
    )  # fmt: skip
    assert "users, user_roles, concepts" in message
    assert existing.read_text() == "precious"
    lines = _lines(exported)
    lines.insert(2, json.dumps({"entity": "widgets", "data": {"id": 1}}))
    bad = tmp_path / "widgets.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    state = fingerprint()
    command_error("import_data", "--input", str(bad), "--format", "jsonl", match="unknown entity 'widgets'")
    assert fingerprint() == state


def test_duplicate_primary_keys(exported, tmp_path):
    path = _write_jsonl(
        tmp_path / "dup.jsonl", exported, [("users", _user()), ("users", _user(username="other", email="o@x.org"))]
    )
    state = fingerprint()
    import_jsonl = ("import_data", "--input", str(path), "--format", "jsonl")
    command_error(*import_jsonl, match=r"users record 2, field 'id': duplicate id", one_line=False)
    assert fingerprint() == state
    # and a duplicate of a unique column that is not the key, against a row already in the database
    run_command("import_data", "--input", str(_write_jsonl(tmp_path / "one.jsonl", exported, [("users", _user())])),
        "--format", "jsonl")  # fmt: skip
    path = _write_jsonl(tmp_path / "dup2.jsonl", exported, [("users", _user(id=900005))])
    state = fingerprint()
    import_jsonl = ("import_data", "--input", str(path), "--format", "jsonl")
    command_error(*import_jsonl, match="username already used by existing row id 900001", one_line=False)
    assert fingerprint() == state


def test_dangling_foreign_keys(exported, tmp_path):
    concept = {"id": 1, "code": "X", "name": "x", "description": "", "created_by": 424242,
               "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}  # fmt: skip
    membership = {"id": 1, "user": 900001, "role": 77777}
    path = _write_jsonl(
        tmp_path / "fk.jsonl", exported, [("users", _user()), ("user_roles", membership), ("concepts", concept)]
    )
    state = fingerprint()
    message = command_error(
        "import_data",
        "--input",
        str(path),
        "--format",
        "jsonl",
        "--allow-privileged",
        match="neither in the file nor",
        one_line=False,
    )
    assert "user_roles record 1, field 'role': points at Role id 77777" in message
    assert "concepts record 1, field 'created_by': points at User id 424242" in message
    assert "field 'user'" not in message  # user 900001 is in the same file: fine
    assert fingerprint() == state


def test_wrong_types(exported, tmp_path):
    path = _write_jsonl(
        tmp_path / "types.jsonl",
        exported,
        [
            ("users", _user(id="abc")),
            ("users", _user(id=900002, username="b", is_active="maybe")),
            ("users", _user(id=900003, username="c", date_joined="yesterday")),
            ("users", _user(id=900004, username="d" * 151)),
            ("users", _user(id=900005, username=None)),
        ],
    )
    state = fingerprint()
    message = command_error(
        "import_data", "--input", str(path), "--format", "jsonl", match="5 invalid record", one_line=False
    )
    assert "users record 1, field 'id': expected an integer, got 'abc'" in message
    assert "users record 2, field 'is_active': expected true or false" in message
    assert "users record 3, field 'date_joined': expected an ISO 8601 date-time" in message
    assert "users record 4, field 'username': longer than 150 characters" in message
    assert "users record 5, field 'username': required" in message
    assert fingerprint() == state


def test_encoding_error_in_csv(tmp_path):
    seed(scale=0.1)
    folder = tmp_path / "csv"
    run_command("export_data", "--entities", "users", "--output", str(folder), "--format", "csv", "--quiet")
    wipe_domain()
    users = folder / "users.csv"
    rows = users.read_bytes().split(b"\n")
    rows[2] = rows[2].replace(b",", b",Jos\xe9 ", 1)  # Latin-1 é in a UTF-8 file
    users.write_bytes(b"\n".join(rows))
    state = fingerprint()
    command_error(
        "import_data", "--input", str(folder), "--format", "csv", match="users.csv: not valid UTF-8 on line 3"
    )
    assert fingerprint() == state


def test_snapshot_id_that_does_not_exist():
    seed(scale=0.1)
    state = fingerprint()
    command_error(
        "rollback_migration", "--snapshot-id", "snapshot_20000101_000000", "--confirm", match="does not exist"
    )
    assert fingerprint() == state


def test_rollback_without_confirm(exported):
    result = json.loads(
        run_command(
            "import_data", "--input", str(exported), "--format", "jsonl", "--snapshot", "--json", "--allow-privileged"
        )
    )
    state = fingerprint()
    command_error("rollback_migration", "--snapshot-id", result["snapshot_id"], match="add --confirm")
    assert fingerprint() == state
    assert Snapshot.objects.get(id=result["snapshot_id"]).status == Snapshot.Status.AVAILABLE


def test_failed_export_keeps_the_existing_file_and_records_the_failure(tmp_path):
    seed(scale=0.1)
    existing = tmp_path / "keep.jsonl"
    existing.write_text("precious")

    def explodes(entity, record):
        raise RuntimeError("boom in the middle")

    with _registered("test_explodes", explodes):
        command_error(
            "export_data", "--output", str(existing), "--format", "jsonl", "--transform", "test_explodes",
            match=r"Transformation 'test_explodes' failed on \w+ record 1: RuntimeError: boom in the middle",
        )  # fmt: skip
    assert existing.read_text() == "precious"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.jsonl"]
    run = DataTransferRun.objects.get()
    assert run.status == DataTransferRun.Status.FAILED and "boom in the middle" in run.error


def _divides_by_zero_on_the_second(entity, record):
    return record if record["id"] == 900001 else record["id"] / 0


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (_divides_by_zero_on_the_second, r"failed on users record 2: ZeroDivisionError: division by zero"),
        (lambda entity, record: [record], r"returned list for users record 1; a transformation returns the record"),
    ],
    ids=["raises", "returns-a-list"],
)
def test_a_failing_transformation_on_import_names_itself_and_the_record_and_writes_nothing(
    exported, tmp_path, function, message
):
    path = _write_jsonl(tmp_path / "t.jsonl", exported, [("users", _user()), ("users", _user(id=900002, username="s"))])
    state = fingerprint()
    with _registered("test_faulty", function):
        command_error(
            "import_data", "--input", str(path), "--format", "jsonl", "--transform", "test_faulty",
            match=f"Transformation 'test_faulty' {message}",
        )  # fmt: skip
    # The operator's code failed, not the input: the data is as it was, and the run is kept as failed
    assert {**fingerprint(), "runs": None} == {**state, "runs": None}
    run = DataTransferRun.objects.get(kind=DataTransferRun.Kind.IMPORT)
    assert run.status == DataTransferRun.Status.FAILED and "test_faulty" in run.error


@pytest.mark.parametrize(("fmt", "name"), [("jsonl", "out.jsonl"), ("json", "out.json"), ("csv", "out.zip")])
def test_an_export_onto_an_existing_folder_is_refused_and_the_folder_kept(tmp_path, fmt, name):
    seed(scale=0.05)
    folder = tmp_path / name
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    command_error("export_data", "--output", str(folder), "--format", fmt, match=r"--output: .* is a folder")
    assert [path.name for path in tmp_path.rglob("*")] == [name, "keep.txt"]
    assert (folder / "keep.txt").read_text() == "precious" and not DataTransferRun.objects.exists()


def test_an_export_into_a_folder_that_takes_no_file_is_one_line_and_no_run(tmp_path):
    seed(scale=0.05)
    command_error("export_data", "--output", "/proc/out.jsonl", "--format", "json", match=r"cannot write into /proc")
    assert not DataTransferRun.objects.exists()


@pytest.mark.parametrize("fmt", ["jsonl", "json"])  # the server's COPY and Python's rows
@pytest.mark.parametrize("full", ["before", "midway"])
def test_a_full_disk_fails_the_export_in_one_line_and_keeps_the_existing_file(
    tmp_path,
    mounts,  # noqa: F811
    fmt,
    full,
):
    seed(scale=0.5)  # about 100 kB of jsonl: more than the disk takes
    disk = mounts.tmpfs(tmp_path / "disk", "64k")
    existing = disk / "keep.jsonl"
    existing.write_text("precious")
    if full == "before":
        fill_disk(disk)
    message = command_error("export_data", "--output", str(existing), "--format", fmt, match="No space left on device")
    assert sorted(path.name for path in disk.iterdir()) == (["filler"] if full == "before" else []) + ["keep.jsonl"]
    assert existing.read_text() == "precious"
    if full == "before":  # found before the run starts: bad input, no run
        assert "cannot write into" in message and not DataTransferRun.objects.exists()
    else:
        run = DataTransferRun.objects.get()
        assert run.status == DataTransferRun.Status.FAILED and "No space left" in run.error


def test_values_only_postgresql_rejects_are_reported_with_record_and_field(exported, tmp_path):
    log = {"id": 1, "actor": None, "action": "login", "entity_type": "core.user", "entity_id": 1,
           "timestamp": "2025-01-01T00:00:00Z", "changes": {}, "ip_address": "10.0.0.1"}  # fmt: skip
    entry_dictionary = {
        "id": 1,
        "name": "d",
        "description": "",
        "created_by": None,
        "created_at": "2025-01-01T00:00:00Z",
    }
    state = fingerprint()
    # nine IPv6 groups have the fast path's shape; PostgreSQL's inet input rejects them
    path = _write_jsonl(tmp_path / "ip.jsonl", exported, [("audit_logs", log), ("audit_logs", {**log, "id": 2,
                        "ip_address": "1:2:3:4:5:6:7:8:9"})])  # fmt: skip
    command_error("import_data", "--input", str(path), "--format", "jsonl", one_line=False,
          match=r"audit_logs record 2, field 'ip_address': invalid input syntax for type inet")  # fmt: skip
    # a negative position is a valid integer for the staging table; the checks refuse it
    entry = {"id": 1, "dictionary": 1, "key": "k", "value": "v", "position": -3}
    path = _write_jsonl(
        tmp_path / "neg.jsonl", exported, [("dictionaries", entry_dictionary), ("dictionary_entries", entry)]
    )
    command_error("import_data", "--input", str(path), "--format", "jsonl", one_line=False,
          match=r"dictionary_entries record 1, field 'position': -3 is out of range")  # fmt: skip
    assert fingerprint() == state


def test_export_refuses_a_bad_since_date_and_a_missing_output(tmp_path):
    command_error(
        "export_data", "--since", "last tuesday", "--output", str(tmp_path / "x.jsonl"), match="expected a date"
    )
    command_error("export_data", "--format", "jsonl", match="--output is required")
    assert list(tmp_path.iterdir()) == []


def test_rollback_after_later_changes_names_the_tables_and_the_flag(exported):
    result = json.loads(
        run_command("import_data", "--input", str(exported), "--format", "jsonl", "--snapshot", "--json",
                    "--allow-privileged")
    )  # fmt: skip
    User.objects.create(username="came-later")
    state = fingerprint()
    message = command_error("rollback_migration", "--snapshot-id", result["snapshot_id"], "--confirm",
                            match=r"^--discard-later-changes: Rows of core_user changed after the import")  # fmt: skip
    assert "Nothing changed." in message
    assert fingerprint() == state
    run_command("rollback_migration", "--snapshot-id", result["snapshot_id"], "--confirm", "--discard-later-changes")
    assert not User.objects.exists()


def test_privileged_import_names_the_flag(exported):
    state = fingerprint()
    message = command_error("import_data", "--input", str(exported), "--format", "jsonl", one_line=False,
                            match="grant privileges")  # fmt: skip
    assert message.endswith("Pass --allow-privileged to import privileges.")
    assert fingerprint() == state
