"""Snapshots and rollback: exact restore proven by table checksums, all or nothing."""

from __future__ import annotations

import threading
import time

import psycopg2
import pytest
from django.db import connection, connections

from dbops.engines import get_connector
from dbops.exceptions import SnapshotError, SnapshotLaterChanges
from dbops.models import Snapshot
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from dbops.services.datamigration.snapshots import snapshot_create, snapshot_discard, snapshot_rollback
from multipult.core.models import Concept, Role, User
from tests.dbops.services.datamigration.helpers import fingerprint, seed

pytestmark = pytest.mark.django_db


def _checksums(tables):
    return {table: get_connector().table_checksum(table, "id") for table in tables}


def test_import_with_snapshot_then_rollback_restores_tables_exactly(tmp_path):
    # given a database, and an export of its concepts that we change and import back in upsert mode
    seed(scale=0.3)
    target = tmp_path / "concepts.jsonl"
    export_data(entities="concepts", output=target, fmt="jsonl")
    Concept.objects.filter(pk__in=Concept.objects.order_by("pk").values("pk")[:3]).update(name="edited locally")
    Concept.objects.create(code="LOCAL-ONLY", name="added after the export")
    before = _checksums(["core_concept"])
    next_id_before = Concept.objects.create(code="PROBE", name="p").pk
    Concept.objects.filter(code="PROBE").delete()
    before = _checksums(["core_concept"])

    result = import_data(input_path=target, fmt="jsonl", mode="upsert", snapshot=True)
    assert result.snapshot_id and result.snapshot_id.startswith("snapshot_")
    assert _checksums(["core_concept"]) != before
    snapshot = Snapshot.objects.get(id=result.snapshot_id)
    assert snapshot.import_run_id == result.run_id
    assert snapshot.tables == ["core_concept"] and snapshot.checksums == before
    assert snapshot.row_counts["core_concept"] == Concept.objects.count()

    # when rolled back
    rollback = snapshot_rollback(snapshot_id=result.snapshot_id)

    # then the table is byte-for-byte what it was, and ids continue where they did
    assert rollback.checksums_after == before
    assert _checksums(["core_concept"]) == before
    assert Concept.objects.create(code="AFTER", name="a").pk == next_id_before + 1
    assert Snapshot.objects.get(id=result.snapshot_id).status == Snapshot.Status.ROLLED_BACK


def test_rollback_of_several_tables_in_dependency_order(tmp_path):
    seed(scale=0.3)
    tables = ["core_role", "core_user", "core_user_roles"]
    before = _checksums(tables)
    snapshot = snapshot_create(entities=["roles", "users", "user_roles"])
    assert snapshot.checksums == before and snapshot.size_bytes > 0
    # changes of every kind: delete a user with memberships, update, insert
    User.objects.order_by("pk").first().delete()
    User.objects.update(first_name="Changed")
    Role.objects.create(name="brand-new")
    snapshot_rollback(snapshot_id=snapshot.id)
    assert _checksums(tables) == before


def test_rollback_that_would_leave_dangling_references_changes_nothing():
    seed(scale=0.1)
    snapshot = snapshot_create(entities="users")
    newcomer = User.objects.create(username="after-snapshot")
    Concept.objects.create(code="REF", name="points at the newcomer", created_by=newcomer)
    state = fingerprint()
    with pytest.raises(SnapshotError, match="point at rows"):
        snapshot_rollback(snapshot_id=snapshot.id)
    assert fingerprint() == state


def test_snapshot_ids_are_unique_within_one_second():
    seed(scale=0.1)
    first = snapshot_create(entities="roles")
    second = snapshot_create(entities="roles")
    assert first.id != second.id
    assert first.id.startswith("snapshot_") and len(first.id) >= len("snapshot_20250127_120000")


def test_unknown_snapshot_is_rejected_and_changes_nothing():
    seed(scale=0.1)
    state = fingerprint()
    with pytest.raises(SnapshotError, match="does not exist"):
        snapshot_rollback(snapshot_id="snapshot_19990101_000000")
    assert fingerprint() == state


def test_rollback_refuses_when_rows_were_written_after_the_import(tmp_path):
    # given an import with a snapshot, then a later insert and a later email change
    seed(scale=0.2)
    target = tmp_path / "users.jsonl"
    export_data(entities="users", output=target, fmt="jsonl")
    User.objects.update(first_name="before the import")
    result = import_data(input_path=target, fmt="jsonl", mode="upsert", snapshot=True, allow_privileged=True)
    Concept.objects.create(code="UNRELATED", name="another table: not part of the snapshot")
    user = User.objects.order_by("pk").first()
    user.email = "changed.after@example.org"
    user.save()
    User.objects.create(username="arrived-after-the-import")
    state = fingerprint()
    # when rolled back without leave, it lists the changed tables and changes nothing
    with pytest.raises(SnapshotLaterChanges, match=r"Rows of core_user changed after the import") as refused:
        snapshot_rollback(snapshot_id=result.snapshot_id)
    assert "core_role" not in str(refused.value) and "core_user_roles" not in str(refused.value)
    assert refused.value.parameter == "discard_later_changes"
    assert fingerprint() == state
    # and with leave it rolls back, later rows included
    snapshot_rollback(snapshot_id=result.snapshot_id, discard_later_changes=True)
    assert not User.objects.filter(username="arrived-after-the-import").exists()
    assert set(User.objects.values_list("first_name", flat=True)) == {"before the import"}


def test_rollback_right_after_the_import_needs_no_leave(tmp_path):
    seed(scale=0.1)
    target = tmp_path / "concepts.jsonl"
    export_data(entities="concepts", output=target, fmt="jsonl")
    result = import_data(input_path=target, fmt="jsonl", mode="upsert", snapshot=True)
    assert Snapshot.objects.get(id=result.snapshot_id).checksums_after_import == _checksums(["core_concept"])
    snapshot_rollback(snapshot_id=result.snapshot_id)


@pytest.mark.django_db(transaction=True)
def test_a_write_committed_while_the_rollback_waits_for_its_lock_is_seen_and_refused(tmp_path):
    # The later-changes check ran before the rollback locked the tables: a write committed in between
    # (while the rollback waited for the lock) was refilled over, silently.
    seed(scale=0.1)
    target = tmp_path / "concepts.jsonl"
    export_data(entities="concepts", output=target, fmt="jsonl")
    result = import_data(input_path=target, fmt="jsonl", mode="upsert", snapshot=True)
    concept = Concept.objects.order_by("pk").first()
    settings = connection.settings_dict
    writer = psycopg2.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], password=settings["PASSWORD"],
        dbname=settings["NAME"],
    )  # fmt: skip
    outcome: list[BaseException | None] = []

    def rollback() -> None:
        try:
            snapshot_rollback(snapshot_id=result.snapshot_id)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)
        finally:
            connections.close_all()

    try:
        with writer.cursor() as cursor:  # holds a row lock: the rollback's table lock waits for this commit
            cursor.execute("UPDATE core_concept SET name = 'written meanwhile' WHERE id = %s", [concept.pk])
        thread = threading.Thread(target=rollback)
        thread.start()
        _wait_until_waiting_for_a_lock(writer)
        writer.commit()
        thread.join(timeout=60)
    finally:
        writer.close()
    try:
        assert len(outcome) == 1 and isinstance(outcome[0], SnapshotLaterChanges), outcome
        assert Concept.objects.get(pk=concept.pk).name == "written meanwhile"
    finally:  # its copy tables outlive the flush of a transaction test
        snapshot_discard(snapshot_id=result.snapshot_id)


def _wait_until_waiting_for_a_lock(observer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with observer.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the transaction sees one frozen view
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the rollback never waited for the table lock")
