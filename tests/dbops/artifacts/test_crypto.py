"""The streaming encryption format: round trip over many chunks, and every kind of tampering refused."""

from __future__ import annotations

import io
import os
import struct

import pytest

from dbops.artifacts import crypto
from dbops.artifacts.crypto import HEADER_LEN, DecryptingReader, EncryptingWriter
from dbops.exceptions import EncryptionError, KeyUnavailable


def encrypt(data: bytes, key: str = "correct horse") -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, key)
    for start in range(0, len(data), 300_000):
        writer.write(data[start : start + 300_000])
    writer.close()
    return sink.getvalue()


def decrypt(blob: bytes, key: str = "correct horse") -> bytes:
    reader = DecryptingReader(io.BytesIO(blob), [key] if key else [])
    out = bytearray()
    while chunk := reader.read(200_000):
        out += chunk
    return bytes(out)


def chunks(blob: bytes) -> list[bytes]:
    parts, offset = [], HEADER_LEN
    while offset < len(blob):
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        parts.append(blob[offset : offset + 4 + length])
        offset += 4 + length
    return parts


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(crypto, "CHUNK_SIZE", 64 * 1024)


@pytest.mark.parametrize("size", [0, 1, 64 * 1024, 64 * 1024 + 1, 1_000_003])
def test_round_trip(size):
    data = os.urandom(size)
    blob = encrypt(data)
    assert decrypt(blob) == data
    # Only a plaintext long enough not to occur in random ciphertext by chance says anything here.
    assert size < 16 or data[:64] not in blob


def test_wrong_and_missing_key():
    blob = encrypt(b"secret rows" * 1000)
    with pytest.raises(KeyUnavailable, match="none of the 1 key"):
        decrypt(blob, key="another key")
    with pytest.raises(KeyUnavailable, match="no key was given"):
        decrypt(blob, key="")


def test_the_key_check_picks_the_right_key_out_of_a_ring():
    data = b"rows of an old backup" * 5000
    blob = encrypt(data, key="the old key")
    reader = DecryptingReader(io.BytesIO(blob), ["the new key", "a key from before", "the old key"])
    assert reader.read() == data


def test_truncation_at_a_chunk_boundary_is_detected():
    blob = encrypt(os.urandom(300_000))
    parts = chunks(blob)
    assert len(parts) >= 3
    truncated = blob[:HEADER_LEN] + b"".join(parts[:-1])
    with pytest.raises(EncryptionError, match="damaged or truncated"):
        decrypt(truncated)


def test_reordered_chunks_and_flipped_bits_are_detected():
    blob = encrypt(os.urandom(300_000))
    parts = chunks(blob)
    swapped = blob[:HEADER_LEN] + parts[1] + parts[0] + b"".join(parts[2:])
    with pytest.raises(EncryptionError):
        decrypt(swapped)
    flipped = bytearray(blob)
    flipped[HEADER_LEN + 100] ^= 1
    with pytest.raises(EncryptionError):
        decrypt(bytes(flipped))
