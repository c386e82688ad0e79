"""The byte pipeline of a backup: dump -> compress -> encrypt -> hash -> file, one pass, bounded memory.

Writers are chained file-like objects; each `close()` flushes its trailer into the next one without
closing it. Readers undo the chain for restores. Memory is bounded by the chunk sizes (about 1 MiB
per stage plus zstd's window), whatever the size of the database.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

import zstandard

from dbops.artifacts.crypto import MAGIC as ENCRYPTION_MAGIC
from dbops.artifacts.crypto import DecryptingReader, EncryptingWriter

CHUNK_SIZE = 1 << 20
ZSTD_LEVEL = 3
# 4 MiB jobs: same ratio on dumps as the level's default (8 MiB+) at about half the worker memory.
ZSTD_JOB_SIZE = 4 << 20
GZIP_LEVEL = 6
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
PGDUMP_MAGIC = b"PGDMP"
DIRECTORY_DUMP_MAGIC = b"toc.dat\x00"  # a tar whose first member is a directory-format dump's table of contents
SQLITE_MAGIC = b"SQLite format 3\x00"
PLAIN_DUMP_MARKER = b"-- PostgreSQL database dump"
PLAIN_DUMP_END = b"-- PostgreSQL database dump complete"
SQLITE_PLAIN_MARKER = b"BEGIN TRANSACTION;"
COMPRESSION_EXTENSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}

ByteProgress = Callable[[int, int], None]  # (bytes read from the dump, bytes written)


class HashingWriter:
    """End of the chain: writes to the file and keeps the SHA-256 and size of what it wrote."""

    def __init__(self, fileobj: BinaryIO, *, progress: ByteProgress | None = None, source=None) -> None:
        self._fileobj, self._progress, self._source = fileobj, progress, source
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._last_report = 0.0

    def write(self, data) -> int:
        self.sha256.update(data)
        self._fileobj.write(data)
        self.size += len(data)
        if self._progress is not None:
            now = time.monotonic()
            if now - self._last_report >= 0.5:
                self._last_report = now
                self._progress(self._source.size if self._source else self.size, self.size)
        return len(data)

    def flush(self) -> None:
        self._fileobj.flush()


class CountingWriter:
    """Start of the chain: counts the raw dump bytes (for progress and the compression ratio)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        self._inner.write(data)
        return len(data)

    def flush(self) -> None:
        pass


class _Passthrough:
    def __init__(self, inner) -> None:
        self._inner = inner

    def write(self, data) -> int:
        return self._inner.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def compress_writer(compression: str, sink, *, level: int | None = None):
    """A writer that compresses into `sink` (zstd at `level`, default ZSTD_LEVEL); its close() writes
    the trailer but leaves `sink` open."""
    if compression == "zstd":
        # Multi-threaded (one worker per core) with a frame checksum, so damage is detected on read.
        params = zstandard.ZstdCompressionParameters.from_level(
            level or ZSTD_LEVEL, threads=-1, job_size=ZSTD_JOB_SIZE, write_checksum=1
        )
        compressor = zstandard.ZstdCompressor(compression_params=params)
        return compressor.stream_writer(sink, closefd=False, write_size=CHUNK_SIZE)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    if compression == "none":
        return _Passthrough(sink)
    raise ValueError(f"unknown compression {compression!r}")


class PipelineWriter:
    """dump bytes -> [compress] -> [encrypt] -> hash -> file. Write the dump into it, then close()."""

    def __init__(
        self,
        fileobj: BinaryIO,
        *,
        compression: str,
        compression_level: int | None = None,
        encryption_key: str | None = None,
        progress: ByteProgress | None = None,
    ) -> None:
        self.raw = CountingWriter(None)
        self.hashing = HashingWriter(fileobj, progress=progress, source=self.raw)
        self._encrypting = EncryptingWriter(self.hashing, encryption_key) if encryption_key is not None else None
        self._compressing = compress_writer(compression, self._encrypting or self.hashing, level=compression_level)
        self.raw._inner = self._compressing

    def write(self, data) -> int:
        return self.raw.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._compressing.close()
        if self._encrypting is not None:
            self._encrypting.close()
        self.hashing.flush()

    @property
    def sha256(self) -> str:
        return self.hashing.sha256.hexdigest()

    @property
    def size(self) -> int:
        return self.hashing.size


def sha256_of(fileobj: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := fileobj.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sniff_layers(head: bytes) -> str:
    """What the outermost layer of a file is: encrypted, zstd, gzip, custom, directory, sqlite, plain or unknown."""
    if head.startswith(ENCRYPTION_MAGIC):
        return "encrypted"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(PGDUMP_MAGIC):
        return "custom"
    if head.startswith(DIRECTORY_DUMP_MAGIC):
        return "directory"
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    stripped = head.lstrip()
    if stripped.startswith(PLAIN_DUMP_MARKER) or stripped.startswith(b"--\n" + PLAIN_DUMP_MARKER):
        return "plain"
    if stripped.startswith(b"PRAGMA foreign_keys=OFF;") or stripped.startswith(SQLITE_PLAIN_MARKER):
        return "sqlite-plain"
    return "unknown"


class _PeekReader:
    """Lets the sniffing read the first bytes of a non-seekable stream without losing them."""

    def __init__(self, source) -> None:
        self._source = source
        self._head = b""

    def peek(self, size: int) -> bytes:
        while len(self._head) < size:
            more = self._source.read(size - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:size]

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._source.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._source.read(size)

    def readable(self) -> bool:
        return True


class ZstdReader:
    """Decompresses zstd frames from `source`; unlike zstandard's stream_reader it raises on a
    truncated frame instead of returning a short result."""

    def __init__(self, source) -> None:
        self._source = source
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._pending = bytearray()
        self._eof = False

    def _fill(self) -> None:
        chunk = self._source.read(64 * 1024)  # small input reads bound the decompressed burst
        if not chunk:
            if not self._frame.eof:
                raise zstandard.ZstdError("zstd data is truncated (the last frame is incomplete)")
            self._eof = True
            return
        while chunk:
            self._pending += self._frame.decompress(chunk)
            if self._frame.eof:
                chunk = self._frame.unused_data
                if chunk:
                    self._frame = self._decompressor.decompressobj()
            else:
                chunk = b""

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._pending) < size):
            self._fill()
        if size < 0 or size >= len(self._pending):
            data = bytes(self._pending)
            self._pending.clear()
            return data
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    def readable(self) -> bool:
        return True


def decoded_reader(source, *, decryption_keys: Sequence[str] = ()) -> tuple[object, list[str]]:
    """Peels encryption (with whichever of `decryption_keys` it was encrypted with) and compression off
    `source`; returns the reader of the dump and the layers found."""
    layers: list[str] = []
    reader = _PeekReader(source)
    while True:
        kind = sniff_layers(reader.peek(64))
        if kind == "encrypted":
            reader = _PeekReader(DecryptingReader(reader, decryption_keys))
        elif kind == "zstd":
            reader = _PeekReader(ZstdReader(reader))
        elif kind == "gzip":
            reader = _PeekReader(gzip.GzipFile(fileobj=reader, mode="rb"))
        else:
            layers.append(kind)
            return reader, layers
        layers.append(kind)
