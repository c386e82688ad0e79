"""Straight-to-S3 backups (`backup_advanced --upload-s3 --no-local-copy`): the pipeline streams into an
S3 multipart upload of many small parts (8 KiB here) through a loopback proxy that injects real faults
(503 answers, connections cut mid-part, S3 down at the start, in the middle and at the completion). A
failed run aborts its upload: nothing is listed, no part is left, nothing is written locally."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection

from dbops.exceptions import UploadError
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from dbops.services.backups.restore import backup_restore
from dbops.services.backups.verify import backup_verify
from tests.commands import command_error, run_command
from tests.s3_proxy import ABORT_UPLOAD, ANY, COMPLETE_UPLOAD, CREATE_UPLOAD, GET_OBJECT, PUT_PART

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]

ROWS = 6000


@pytest.fixture
def bulky_table():
    """~200 KB of incompressible-ish rows, so that one backup is well over 10 parts of 8 KiB."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE s3_bulk (id integer PRIMARY KEY, payload text NOT NULL)")
        cursor.execute(
            "INSERT INTO s3_bulk SELECT g, md5(g::text || 'a') || md5(g::text || 'b') FROM generate_series(1, %s) g",
            [ROWS],
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS s3_bulk")


def bucket_state(proxy) -> tuple[list[str], list[str]]:
    """What the bucket holds, seen past the proxy: object keys and unfinished multipart uploads."""
    objects = proxy.direct.list_objects_v2(Bucket=proxy.bucket).get("Contents", [])
    uploads = proxy.direct.list_multipart_uploads(Bucket=proxy.bucket).get("Uploads", [])
    return sorted(o["Key"] for o in objects), [u["Key"] for u in uploads]


def stored_sha256(proxy, key: str) -> str:
    return hashlib.sha256(proxy.direct.get_object(Bucket=proxy.bucket, Key=key)["Body"].read()).hexdigest()


def parts_after(number: int):
    def match(method: str, path: str, query: dict) -> bool:
        return PUT_PART()(method, path, query) and int(query["partNumber"][0]) > number

    return match


def straight_to_s3(**options) -> BackupRecord:
    return backup_create(upload_s3=True, local_copy=False, **options)


def test_a_backup_streams_into_many_parts_and_leaves_no_local_file(faulty_s3, backup_dir, bulky_table):
    output = run_command("backup_advanced", "--upload-s3", "--no-local-copy")
    backup_record = BackupRecord.objects.get()
    assert f"Backup #{backup_record.pk} succeeded: " in output and "(no local copy)" in output
    assert backup_record.status == "succeeded" and backup_record.s3_upload_id == ""
    assert (backup_record.location, backup_record.local_presence, backup_record.s3_presence) == ("", "", "present")
    assert faulty_s3.count(PUT_PART()) >= 10  # one part per 8 KiB
    assert [p for p in backup_dir.rglob("*") if p.is_file()] == []  # no artifact, no partial, no manifest
    keys, uploads = bucket_state(faulty_s3)
    assert keys == [backup_record.s3_key, backup_record.s3_key + ".manifest.json"] and uploads == []
    assert stored_sha256(faulty_s3, backup_record.s3_key) == backup_record.sha256


def test_restore_and_verification_stream_the_s3_copy(faulty_s3, backup_dir, bulky_table, tmp_path):
    backup_record = straight_to_s3()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM s3_bulk WHERE id > 10")
    # A read cut half-way resumes from the byte it reached (a ranged GET), for verification and restore.
    faulty_s3.fail(GET_OBJECT, "cut-response", times=1)
    verification = backup_verify(backup_record=backup_record, restore_test=True)
    assert verification.passed and verification.source == "s3", verification.problems
    faulty_s3.fail(GET_OBJECT, "cut-response", times=1)
    backup_restore(backup_record=backup_record, tables=["s3_bulk"], safety_backup=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM s3_bulk")
        assert cursor.fetchone()[0] == ROWS
    assert faulty_s3.count(GET_OBJECT) >= 4  # two reads, each cut once and resumed


def test_a_part_answered_503_and_a_part_cut_mid_body_are_retried_alone(faulty_s3, backup_dir, bulky_table):
    faulty_s3.fail(PUT_PART(3), "503", times=1)
    faulty_s3.fail(PUT_PART(5), "cut", times=2)
    backup_record = straight_to_s3()
    assert faulty_s3.count(PUT_PART(3)) == 2 and faulty_s3.count(PUT_PART(5)) == 3
    assert faulty_s3.count(PUT_PART(4)) == 1  # the others were sent once
    assert stored_sha256(faulty_s3, backup_record.s3_key) == backup_record.sha256
    assert backup_verify(backup_record=backup_record).passed


def test_a_part_held_past_the_timeout_is_sent_again(faulty_s3, backup_dir, bulky_table):
    faulty_s3.fail(PUT_PART(2), "hang", times=1, seconds=3)  # the client gives up after 2 s
    backup_record = straight_to_s3()
    assert faulty_s3.count(PUT_PART(2)) == 2
    assert stored_sha256(faulty_s3, backup_record.s3_key) == backup_record.sha256


def test_a_part_failing_past_the_retry_budget_aborts_the_upload(faulty_s3, backup_dir, bulky_table):
    faulty_s3.fail(PUT_PART(4), "503")
    message = command_error("backup_advanced", "--upload-s3", "--no-local-copy")
    backup_record = BackupRecord.objects.get()
    assert message.startswith(f"Backup #{backup_record.pk} failed: S3 upload of part 4 of ")
    assert "failed after 3 attempts: ClientError" in message and message.endswith("Nothing was kept.")
    assert faulty_s3.count(PUT_PART(4)) == 3 and faulty_s3.count(ABORT_UPLOAD) == 1
    assert backup_record.status == "failed" and backup_record.s3_upload_id  # aborted: nothing to clean up later
    assert bucket_state(faulty_s3) == ([], [])
    assert list(backup_dir.rglob("*.*")) == []


def test_s3_down_at_the_start(faulty_s3, backup_dir, bulky_table):
    faulty_s3.fail(ANY, "refuse")
    message = command_error("backup_advanced", "--upload-s3", "--no-local-copy")
    assert "S3 start of the upload of backups/" in message and "failed after 3 attempts" in message
    assert BackupRecord.objects.get().status == "failed"
    assert faulty_s3.count(CREATE_UPLOAD) == 3
    faulty_s3.heal()
    assert bucket_state(faulty_s3) == ([], [])
    assert list(backup_dir.rglob("*.*")) == []


def test_s3_down_in_the_middle_leaves_the_upload_to_the_next_run(faulty_s3, backup_dir, bulky_table):
    # Given S3 goes away after part 3, the abort cannot reach it either...
    faulty_s3.fail(parts_after(3), "refuse")
    faulty_s3.fail(ABORT_UPLOAD, "refuse")
    with pytest.raises(UploadError, match="could not be aborted .* the next backup aborts it"):
        straight_to_s3()
    failed = BackupRecord.objects.get()
    assert failed.status == "failed" and failed.s3_upload_id
    faulty_s3.heal()
    assert bucket_state(faulty_s3) == ([], [f"backups/{failed.storage_name}"])  # its parts are still billed
    # ...when S3 is back, the next backup of the database aborts it before it starts its own.
    succeeded = straight_to_s3()
    keys, uploads = bucket_state(faulty_s3)
    assert uploads == [] and keys == [succeeded.s3_key, succeeded.s3_key + ".manifest.json"]
    failed.refresh_from_db()
    assert failed.s3_upload_id == ""


def test_s3_failing_the_completion_aborts_the_upload(faulty_s3, backup_dir, bulky_table):
    faulty_s3.fail(COMPLETE_UPLOAD, "503")
    with pytest.raises(UploadError, match=r"S3 completion of backups/.* failed after 3 attempts"):
        straight_to_s3()
    assert BackupRecord.objects.get().status == "failed"
    assert bucket_state(faulty_s3) == ([], [])


def test_a_completion_whose_answer_is_lost_is_not_a_failure(faulty_s3, backup_dir, bulky_table):
    faulty_s3.fail(COMPLETE_UPLOAD, "cut-response", times=1)  # S3 completed it; the client never heard
    backup_record = straight_to_s3()
    assert faulty_s3.count(COMPLETE_UPLOAD) == 2
    assert stored_sha256(faulty_s3, backup_record.s3_key) == backup_record.sha256


def test_without_a_local_copy_the_backup_must_go_to_s3(faulty_s3, backup_dir):
    assert command_error("backup_advanced", "--no-local-copy") == (
        "--no-local-copy: A backup without a local copy must go to S3."
    )
    assert not BackupRecord.objects.exists()


def test_scheduled_backups_go_straight_to_s3_when_the_setting_says_so(faulty_s3, backup_dir, settings):
    from dbops.services.ops.scheduling import scheduled_backup

    settings.BACKUP_LOCAL_COPY = False
    outcome = scheduled_backup(task_id="straight-to-s3")
    backup_record = BackupRecord.objects.get(pk=outcome["backup_id"])
    assert backup_record.uploaded_to_s3 and backup_record.location == "" and faulty_s3.count(PUT_PART()) >= 1
    settings.BACKUP_LOCAL_COPY = True
    kept = BackupRecord.objects.get(pk=scheduled_backup(task_id="with-local-copy")["backup_id"])
    assert kept.uploaded_to_s3 and kept.local_presence == "present"
