"""A damaged local copy with an intact copy on the S3 server (moto): restore and verification use the S3
copy and say so (command output, admin message, the record); with both copies damaged, nothing happens."""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import boto3
import pytest
from django.contrib import messages

from dbops.admin.backup_display import restore_outcome, verification_outcome
from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from dbops.services.backups.restore import backup_restore, restore_summary
from multipult.core.models import Concept
from tests.commands import command_error, run_command
from tests.dbops.services.backups.conftest import tree

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drop_pre_restore_databases")]


def flip_a_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 3] ^= 0x10
    return bytes(damaged)


def s3_client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def uploaded(backup_dir, s3_bucket, some_data):
    """A backup on local disk and S3 whose local copy then got a flipped byte; rows deleted since."""
    backup_record = backup_create(upload_s3=True)
    local = Path(backup_record.location)
    local.write_bytes(flip_a_byte(local.read_bytes()))
    Concept.objects.filter(code__in=["C4", "C5"]).delete()
    return backup_record


def test_restore_uses_the_intact_s3_copy_and_says_so(uploaded, backup_dir, s3_bucket):
    damaged_local = Path(uploaded.location).read_bytes()
    output = run_command("restore_db", "--backup-id", str(uploaded.pk), "--tables", "core_concept", "--confirm")
    assert Concept.objects.count() == 30
    assert f"The local copy {uploaded.location} is damaged (SHA-256 " in output
    assert f"used the S3 copy s3://{s3_bucket}/{uploaded.s3_key} instead." in output
    uploaded.refresh_from_db()
    assert (uploaded.local_presence, uploaded.s3_presence, uploaded.status) == ("damaged", "present", "succeeded")
    assert Path(uploaded.location).read_bytes() == damaged_local  # reported, not silently rewritten


def test_the_admin_message_of_such_a_restore_names_the_s3_copy(uploaded, s3_bucket):
    result = backup_restore(backup_record=uploaded, tables=["core_concept"], safety_backup=False)
    message = restore_outcome(restore_summary(result))
    assert "is damaged" in message and f"used the S3 copy s3://{s3_bucket}/" in message


def test_verification_passes_on_the_s3_copy_and_reports_the_local_damage(uploaded, s3_bucket):
    errors = StringIO()
    output = run_command("verify_backup", str(uploaded.pk), "--restore-test", stderr=errors)
    assert f"Backup #{uploaded.pk} verified: checksum + restore test" in output and "of the S3 copy passed" in output
    assert f"Warning: The local copy {uploaded.location} is damaged" in errors.getvalue()
    uploaded.refresh_from_db()
    assert uploaded.verification_status == "passed" and uploaded.local_presence == "damaged"
    details = uploaded.verification_details
    assert details["source"] == "s3" and "is damaged" in details["warnings"][0]
    text, level = verification_outcome(uploaded)
    assert level == messages.WARNING and "verification of the S3 copy passed" in text and "is damaged" in text


def test_both_copies_damaged_restores_nothing_and_fails_verification(uploaded, backup_dir, s3_bucket):
    body = s3_client().get_object(Bucket=s3_bucket, Key=uploaded.s3_key)["Body"].read()
    s3_client().put_object(Bucket=s3_bucket, Key=uploaded.s3_key, Body=flip_a_byte(body))
    before, files_before = Concept.objects.count(), tree(backup_dir)
    message = command_error("restore_db", "--backup-id", str(uploaded.pk), "--confirm")
    assert message.startswith(f"Backup #{uploaded.pk} is damaged: the local copy ")
    assert f"the S3 copy s3://{s3_bucket}/{uploaded.s3_key} is damaged" in message
    assert Concept.objects.count() == before and tree(backup_dir) == files_before
    assert not BackupRecord.objects.filter(kind="safety").exists()

    command_error("verify_backup", str(uploaded.pk), match="FAILED verification")
    uploaded.refresh_from_db()
    assert uploaded.verification_status == "failed"
    assert (uploaded.local_presence, uploaded.s3_presence) == ("damaged", "damaged")


def test_a_missing_local_copy_is_reported_too(backup_dir, s3_bucket, some_data):
    backup_record = backup_create(upload_s3=True)
    Path(backup_record.location).unlink()
    output = run_command("verify_backup", str(backup_record.pk), stderr=(errors := StringIO()))
    assert (
        "of the S3 copy passed" in output and f"The local copy {backup_record.location} is missing" in errors.getvalue()
    )
    backup_record.refresh_from_db()
    assert (backup_record.local_presence, backup_record.s3_presence) == ("missing", "present")
