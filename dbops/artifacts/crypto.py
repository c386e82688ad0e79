"""Streaming authenticated encryption of backup artifacts (AES-256-GCM in chunks, `cryptography`).

Layout: header = MAGIC, version, 16-byte scrypt salt, 7-byte nonce prefix, 16-byte key check; then
chunks of `4-byte big-endian length + ciphertext`. Each chunk's nonce is prefix + 4-byte counter +
final flag, and the header is the associated data, so reordering, dropping, truncating or splicing
chunks fails authentication. The key check tells a wrong key apart from a damaged file, and picks the
right key out of a key ring (dbops.artifacts.keyring).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence

from dbops.exceptions import EncryptionError, KeyUnavailable

MAGIC = b"MPULTENC"
VERSION = 1
CHUNK_SIZE = 1 << 20
_SALT_LEN, _PREFIX_LEN, _CHECK_LEN, _TAG_LEN = 16, 7, 16, 16
HEADER_LEN = len(MAGIC) + 1 + _SALT_LEN + _PREFIX_LEN + _CHECK_LEN
_LENGTH = struct.Struct(">I")


def _derive_key(passphrase: str, salt: bytes) -> bytes:
    if not passphrase:
        raise EncryptionError("No encryption key given; one is needed to encrypt or decrypt backups.")
    # `cryptography` is imported on first use: most backups are not encrypted (start-up time).
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    # scrypt, because the key may be a passphrase rather than 32 random bytes.
    return Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(passphrase.encode())


def _cipher(key: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _key_check(key: bytes) -> bytes:
    return hmac.new(key, b"multipult-backup-key-check", hashlib.sha256).digest()[:_CHECK_LEN]


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    if counter >= 2**32:
        raise EncryptionError("Backup too large for one encryption stream (over 4 PiB).")
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


class EncryptingWriter:
    """File-like sink: encrypts everything written to it and writes chunks to `sink`; close() seals."""

    def __init__(self, sink, passphrase: str) -> None:
        salt, prefix = os.urandom(_SALT_LEN), os.urandom(_PREFIX_LEN)
        key = _derive_key(passphrase, salt)
        self._aead, self._prefix, self._sink = _cipher(key), prefix, sink
        self._header = MAGIC + bytes([VERSION]) + salt + prefix + _key_check(key)
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False
        sink.write(self._header)

    def write(self, data) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK_SIZE:  # keep at least one byte back for the final chunk
            self._emit(bytes(self._buffer[:CHUNK_SIZE]), final=False)
            del self._buffer[:CHUNK_SIZE]
        return len(data)

    def _emit(self, plaintext: bytes, *, final: bool) -> None:
        ciphertext = self._aead.encrypt(_nonce(self._prefix, self._counter, final), plaintext, self._header)
        self._sink.write(_LENGTH.pack(len(ciphertext)) + ciphertext)
        self._counter += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._closed = True


class DecryptingReader:
    """File-like source: reads an EncryptingWriter stream from `source` and returns the plaintext.

    `passphrases` are the candidate keys; the header's key check picks the one it was encrypted with."""

    def __init__(self, source, passphrases: Sequence[str]) -> None:
        self._source = source
        header = self._read_exact(HEADER_LEN, what="header")
        if not header.startswith(MAGIC):
            raise EncryptionError("Not an encrypted backup (bad header).")
        if header[len(MAGIC)] != VERSION:
            raise EncryptionError(f"Unsupported encryption format version {header[len(MAGIC)]}.")
        offset = len(MAGIC) + 1
        salt = header[offset : offset + _SALT_LEN]
        self._prefix = header[offset + _SALT_LEN : offset + _SALT_LEN + _PREFIX_LEN]
        check = header[-_CHECK_LEN:]
        key = next(
            (key for key in (_derive_key(p, salt) for p in passphrases) if hmac.compare_digest(_key_check(key), check)),
            None,
        )
        if key is None and not passphrases:
            raise KeyUnavailable("Key unavailable: the backup is encrypted and no key was given.")
        if key is None:
            raise KeyUnavailable(
                f"Key unavailable: none of the {len(passphrases)} key(s) in the ring is the key this backup was "
                "encrypted with."
            )
        self._aead, self._header = _cipher(key), header
        self._counter = 0
        self._pending = bytearray()
        self._next_length = self._read_length()
        self._done = False

    def _read_exact(self, size: int, *, what: str) -> bytes:
        data = self._source.read(size)
        while data and len(data) < size:
            more = self._source.read(size - len(data))
            if not more:
                break
            data += more
        if len(data) != size:
            raise EncryptionError(f"Encrypted backup is truncated (incomplete {what}).")
        return data

    def _read_length(self) -> int | None:
        raw = self._source.read(_LENGTH.size)
        if not raw:
            return None
        if len(raw) < _LENGTH.size:
            raw += self._read_exact(_LENGTH.size - len(raw), what="chunk length")
        return _LENGTH.unpack(raw)[0]

    def _next_chunk(self) -> None:
        if self._next_length is None:
            raise EncryptionError("Encrypted backup is truncated (no final chunk).")
        if self._next_length < _TAG_LEN or self._next_length > CHUNK_SIZE + _TAG_LEN:
            raise EncryptionError("Encrypted backup is damaged (bad chunk length).")
        ciphertext = self._read_exact(self._next_length, what="chunk")
        self._next_length = self._read_length()
        final = self._next_length is None  # the last chunk in the file must carry the final flag
        from cryptography.exceptions import InvalidTag

        try:
            plaintext = self._aead.decrypt(_nonce(self._prefix, self._counter, final), ciphertext, self._header)
        except InvalidTag:
            raise EncryptionError("Encrypted backup is damaged or truncated (authentication failed).") from None
        self._counter += 1
        self._pending += plaintext
        self._done = final

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._pending) < size):
            self._next_chunk()
        if size < 0:
            size = len(self._pending)
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    def readable(self) -> bool:
        return True
