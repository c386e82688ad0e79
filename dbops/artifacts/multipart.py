"""Straight to S3: an artifact streamed into one S3 multipart upload, with bounded memory and no local file.

`s3_multipart_writer` is the S3 counterpart of the local atomic writer: the pipeline writes into it, it
cuts the bytes into parts, uploads up to PARTS_IN_FLIGHT of them while the dump goes on, retries each
part on its own (503 and other 5xx, a reset or closed connection, a timeout) and completes the upload
only when the block succeeds. On any failure it aborts the upload, so no parts are left billing; a run
that is killed cannot abort, so `s3_uploads_abort_unfinished` (called under the database's lock by
the next backup and by retention) aborts what dead runs left under a prefix.

Memory: PARTS_IN_FLIGHT parts in flight, the one being cut and the buffer filling, whatever the size of
the artifact (4 x 8 MiB by default).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from botocore.exceptions import ClientError
from django.core.files.storage import Storage

from dbops.artifacts.s3 import s3_client, with_retries
from dbops.conf import dbops_setting
from dbops.exceptions import UploadError

logger = logging.getLogger(__name__)

PARTS_IN_FLIGHT = 2
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 << 20  # S3's own floor for every part but the last


@dataclass
class UploadedParts:
    parts: list[dict]
    size: int = 0


class MultipartSink:
    """The file-like end of the pipeline: buffers writes into parts and uploads them in the background."""

    def __init__(self, *, client, bucket: str, key: str, upload_id: str, part_size: int, attempts: int) -> None:
        self._client, self._bucket, self._key, self.upload_id = client, bucket, key, upload_id
        self._part_size, self._attempts = part_size, attempts
        self._buffer = bytearray()
        self._pending: list[Future] = []
        self._executor = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self.uploaded = UploadedParts(parts=[])
        self._next_number = 1

    def write(self, data) -> int:
        self._buffer += data
        while len(self._buffer) >= self._current_part_size():
            size = self._current_part_size()
            self._wait_for_a_free_slot()  # before cutting: never more than PARTS_IN_FLIGHT parts + the buffer
            # The buffer itself becomes the part; only its tail (less than one write) is copied.
            part, self._buffer = self._buffer, self._buffer[size:]
            del part[size:]
            self._submit(part)
        return len(data)

    def flush(self) -> None:
        pass

    def _current_part_size(self) -> int:
        # Parts grow 2x every 1,000 so that 10,000 parts reach far beyond part_size x 10,000.
        return self._part_size << ((self._next_number - 1) // 1000)

    def _submit(self, part: bytes | bytearray) -> None:
        if self._next_number > MAX_PARTS:
            raise UploadError(f"The artifact needs more than {MAX_PARTS} S3 parts; raise DBOPS['S3_PART_SIZE'].")
        self._wait_for_a_free_slot()
        self._pending.append(self._executor.submit(self._upload_part, self._next_number, part))
        self._next_number += 1

    def _wait_for_a_free_slot(self) -> None:
        while len(self._pending) >= PARTS_IN_FLIGHT:  # bounded memory: wait for the oldest part
            self._collect(self._pending.pop(0))

    def _collect(self, future: Future) -> None:
        part, size = future.result()
        self.uploaded.parts.append(part)
        self.uploaded.size += size

    def _upload_part(self, number: int, part: bytes | bytearray) -> tuple[dict, int]:
        md5 = base64.b64encode(hashlib.md5(part, usedforsecurity=False).digest()).decode()

        def send():
            return self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=part,
                ContentMD5=md5,  # S3 refuses a part that arrived altered
            )

        response = with_retries(f"upload of part {number} of {self._key}", send, attempts=self._attempts)
        return {"PartNumber": number, "ETag": response["ETag"]}, len(part)

    def finish(self) -> UploadedParts:
        """Uploads the last part, waits for all, and returns them in order (at least one part)."""
        if self._buffer or self._next_number == 1:
            self._submit(bytes(self._buffer))
            self._buffer = bytearray()
        while self._pending:
            self._collect(self._pending.pop(0))
        self.uploaded.parts.sort(key=lambda part: part["PartNumber"])
        return self.uploaded

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)


def _complete(client, bucket: str, key: str, upload_id: str, uploaded: UploadedParts, attempts: int) -> None:
    def send():
        try:
            client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": uploaded.parts}
            )
        except ClientError as exc:
            # A completion whose answer was lost and then retried: the object is there, the upload gone.
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload" or not _object_size_is(
                client, bucket, key, uploaded.size
            ):
                raise

    with_retries(f"completion of {key}", send, attempts=attempts)


def _object_size_is(client, bucket: str, key: str, size: int) -> bool:
    try:
        return client.head_object(Bucket=bucket, Key=key)["ContentLength"] == size
    except Exception:  # cannot tell: the completion counts as failed
        return False


def s3_upload_abort(client, *, bucket: str, key: str, upload_id: str) -> str:
    """Aborts one multipart upload; returns "" or why it could not (the next run tries again)."""
    try:
        with_retries(
            f"abort of the upload of {key}",
            lambda: client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
            attempts=3,
        )
    except UploadError as exc:
        if isinstance(exc.__cause__, ClientError) and exc.__cause__.response["Error"]["Code"] == "NoSuchUpload":
            return ""
        return str(exc)
    return ""


@contextmanager
def s3_multipart_writer(
    storage: Storage, key: str, *, on_started: Callable[[str], None] = lambda upload_id: None
) -> Iterator[MultipartSink]:
    """Streams the block's writes into the S3 object `key` (the full key, prefix included): the object
    exists only if the block succeeds; otherwise the upload is aborted and UploadError raised (for a
    failure of S3 itself) or the block's own error re-raised. `on_started(upload_id)` is called once
    the upload exists, so a caller can record it for the clean-up after a kill."""
    client = s3_client(storage)
    bucket, attempts = storage.bucket_name, dbops_setting("S3_PART_ATTEMPTS")
    part_size = max(int(dbops_setting("S3_PART_SIZE")), 1)
    created = with_retries(
        f"start of the upload of {key}",
        lambda: client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/octet-stream"),
        attempts=attempts,
    )
    upload_id = created["UploadId"]
    on_started(upload_id)
    sink = MultipartSink(
        client=client, bucket=bucket, key=key, upload_id=upload_id, part_size=part_size, attempts=attempts
    )
    try:
        yield sink
        uploaded = sink.finish()
        _complete(client, bucket, key, upload_id, uploaded, attempts)
    except BaseException as exc:
        sink.close()
        problem = s3_upload_abort(client, bucket=bucket, key=key, upload_id=upload_id)
        if problem:
            logger.warning("could not abort the S3 upload %s of %s: %s", upload_id, key, problem)
            exc.add_note(f"The unfinished S3 upload could not be aborted ({problem}); the next backup aborts it.")
        raise
    finally:
        sink.close()
    logger.info("S3 upload of %s complete: %d parts, %d bytes", key, len(uploaded.parts), uploaded.size)


def s3_uploads_unfinished(storage: Storage, prefix: str) -> list[dict]:
    """The multipart uploads not completed nor aborted under `prefix` (a full key prefix)."""
    client = s3_client(storage)
    found, marker = [], {}
    while True:
        page = client.list_multipart_uploads(Bucket=storage.bucket_name, Prefix=prefix, **marker)
        found += [{"key": u["Key"], "upload_id": u["UploadId"]} for u in page.get("Uploads", [])]
        if not page.get("IsTruncated"):
            return found
        marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}


def s3_uploads_abort_unfinished(storage: Storage, prefix: str) -> tuple[list[str], list[str]]:
    """Aborts every unfinished multipart upload under `prefix`; only call it while no run that could
    own one is going (under the database's lock). Returns the keys aborted and one line per failure."""
    client = s3_client(storage)
    aborted, failed = [], []
    for upload in s3_uploads_unfinished(storage, prefix):
        problem = s3_upload_abort(client, bucket=storage.bucket_name, key=upload["key"], upload_id=upload["upload_id"])
        (failed if problem else aborted).append(problem or upload["key"])
    return aborted, failed
