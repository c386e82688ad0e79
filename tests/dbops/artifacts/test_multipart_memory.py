"""The memory bound of a straight-to-S3 upload, by design: PARTS_IN_FLIGHT parts on their way and the
buffer filling (the full buffer becomes the part, uncopied), whatever the artifact's size. A fake S3
client (pure logic: the real server and its faults are in tests/dbops/services/backups/
test_straight_to_s3.py) is slow enough that the writer always runs ahead of the uploads."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from dbops.artifacts.multipart import PARTS_IN_FLIGHT, MultipartSink

PART_SIZE = 256 << 10
CHUNK = 64 << 10


class SlowClient:
    """Keeps nothing of a part's body (a real client sends it and lets it go)."""

    def __init__(self) -> None:
        self.parts = 0

    def upload_part(self, *, Body, PartNumber, **_):  # noqa: N803 (boto3's names)
        time.sleep(0.002)
        self.parts += 1
        return {"ETag": f'"{PartNumber}"'}


def peak_while_writing(parts: int) -> tuple[int, int]:
    client = SlowClient()
    sink = MultipartSink(client=client, bucket="b", key="k", upload_id="u", part_size=PART_SIZE, attempts=1)
    chunk = b"x" * CHUNK
    tracemalloc.start()
    try:
        for _ in range(parts * PART_SIZE // CHUNK):
            sink.write(chunk)
        uploaded = sink.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sink.close()
    assert len(uploaded.parts) == client.parts == parts and uploaded.size == parts * PART_SIZE
    return peak, client.parts


@pytest.mark.parametrize("parts", [10, 80])
def test_memory_is_a_few_parts_whatever_the_size(parts):
    peak, _ = peak_while_writing(parts)
    # in flight + the buffer (a part and one chunk), and a little bookkeeping
    assert peak < (PARTS_IN_FLIGHT + 1) * PART_SIZE + 2 * CHUNK + (64 << 10)


def test_eight_times_the_data_takes_no_more_memory():
    small, _ = peak_while_writing(10)
    large, _ = peak_while_writing(80)
    assert large < small * 1.2


def test_one_client_per_configuration_and_one_loaded_service_model(s3_bucket, settings):
    # Making a client costs ~0.25 s and each boto3 session loads S3's service model again (~13 MB):
    # a backup asks for a client several times.
    from django.core.files.storage import storages

    from dbops.artifacts.s3 import s3_client

    first = s3_client(storages["backups_s3"])
    assert s3_client(storages["backups_s3"]) is first
    settings.DBOPS = {**getattr(settings, "DBOPS", {}), "S3_TIMEOUT_SECONDS": 7.0}
    other = s3_client(storages["backups_s3"])
    assert other is not first and other.meta.config.read_timeout == 7.0
    assert other._loader is first._loader
