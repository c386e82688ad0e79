"""kill -9 of a straight-to-S3 backup while a part is on its way: the dead run cannot abort its
multipart upload, so the next backup of the database aborts it (no orphan parts left billing), marks
the dead record failed, and nothing was ever written locally. Real child process, real SIGKILL, a
loopback proxy that holds the part in flight."""

from __future__ import annotations

import signal

import pytest
from django.db import connection

from dbops.models import BackupRecord
from dbops.services.backups.create import backup_create
from tests.dbops.commandline import start_manage
from tests.faults import observe
from tests.s3_proxy import PUT_PART

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_killed_upload_is_aborted_by_the_next_backup(faulty_s3, fault_env, backup_dir):
    faulty_s3.fail(PUT_PART(1), "hang", times=1, seconds=60)
    env = {
        **fault_env,
        "S3_BACKUP_BUCKET": faulty_s3.bucket,
        "S3_ENDPOINT_URL": faulty_s3.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    connection.close()
    child = start_manage("backup_advanced", "--upload-s3", "--no-local-copy", env=env)
    # Given the backup's first part is in flight...
    observe.wait_for(lambda: faulty_s3.count(PUT_PART(1)), what="the child's first part reaching S3")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    killed = BackupRecord.objects.get()
    assert killed.status == "running" and killed.s3_upload_id
    uploads = faulty_s3.direct.list_multipart_uploads(Bucket=faulty_s3.bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [killed.s3_upload_id]  # left behind, billing
    # ...when the next backup of the database runs, it aborts that upload before its own.
    backup_record = backup_create(upload_s3=True, local_copy=False)
    assert faulty_s3.direct.list_multipart_uploads(Bucket=faulty_s3.bucket).get("Uploads", []) == []
    killed.refresh_from_db()
    assert (killed.status, killed.s3_upload_id) == ("failed", "")
    objects = faulty_s3.direct.list_objects_v2(Bucket=faulty_s3.bucket)["Contents"]
    assert sorted(o["Key"] for o in objects) == [backup_record.s3_key, backup_record.s3_key + ".manifest.json"]
    assert [p for p in backup_dir.rglob("*") if p.is_file()] == []
