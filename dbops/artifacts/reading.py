"""Reading a backup back: find a good copy of the artifact (local, else S3), prove its checksum, peel
encryption and compression into a plain dump file. Shared by restore and verification, and run before
either touches a database."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from dbops.artifacts.keyring import key_ring, ring_keys_for
from dbops.artifacts.manifest import manifest_beside
from dbops.artifacts.pipeline import CHUNK_SIZE, PLAIN_DUMP_END, ByteProgress, decoded_reader, sha256_of, sniff_layers
from dbops.artifacts.s3 import S3ObjectReader
from dbops.artifacts.sidecar import sidecar_digest, sidecar_path
from dbops.artifacts.storage import LOCAL, S3, local_storage, s3_key, s3_storage, s3_url, write_all
from dbops.exceptions import (
    ArtifactWriteError,
    ChecksumMismatch,
    ChecksumUnavailable,
    EncryptionError,
    NotABackupError,
    RestoreError,
)
from dbops.models import BackupRecord

# What the innermost layer of a decoded artifact means, per engine.
FORMAT_OF_LAYER = {
    "custom": "custom",
    "directory": "directory",
    "plain": "plain",
    "sqlite": "sqlite",
    "sqlite-plain": "plain",
}
ENGINE_OF_LAYER = {
    "custom": "postgresql",
    "directory": "postgresql",
    "plain": "postgresql",
    "sqlite": "sqlite",
    "sqlite-plain": "sqlite",
}
PRESENT, MISSING, DAMAGED = "present", "missing", "damaged"
READABLE_STATUSES = (BackupRecord.Status.SUCCEEDED, BackupRecord.Status.MISSING)
_PLACE_NAMES = {LOCAL: "local", S3: "S3"}


@dataclass
class DecodedDump:
    path: Path
    fmt: str  # custom | plain | sqlite
    engine: str  # postgresql | sqlite
    layers: list[str]
    size_bytes: int


ARTIFACT, CHECKSUM, DUMP = "artifact", "checksum", "dump"  # what artifact_locate leaves in the work folder


@dataclass
class ArtifactCopies:
    """What artifact_locate found: a good copy (its path when it is a file here, its decoded dump when
    asked for), or none, and what each place held."""

    backup_record: BackupRecord
    path: Path | None = None
    decoded: DecodedDump | None = None
    place: str = ""  # local | s3: where the good copy is
    where: str = ""  # its path, or s3://bucket/key
    copies: dict[str, str] = field(default_factory=dict)  # place -> present | damaged | missing (places seen)
    damage: dict[str, str] = field(default_factory=dict)  # place -> what is wrong with that copy
    unreachable: str = ""  # why S3 could not be asked, if it could not

    @property
    def ok(self) -> bool:
        """A copy whose SHA-256 and size match the catalog was found."""
        return bool(self.place)

    @property
    def notes(self) -> list[str]:
        """What an operator should know about a good copy found past a bad one."""
        if not self.ok or self.place != S3 or LOCAL not in self.copies:
            return []
        return [f"The local copy {self.damage[LOCAL]}: used the S3 copy {self.where} instead."]

    def failure(self) -> RestoreError:
        pk = self.backup_record.pk
        if self.damage:
            details = "; ".join(f"the {_PLACE_NAMES[place]} copy {what}" for place, what in self.damage.items())
            more = f"; S3 could not be asked: {self.unreachable}" if self.unreachable else ""
            return ChecksumMismatch(f"Backup #{pk} is damaged: {details}{more}.")
        if self.unreachable:
            return RestoreError(
                f"Backup #{pk}: its artifact is not in local storage and S3 is unreachable: {self.unreachable}"
            )
        return RestoreError(f"Backup #{pk}: its artifact is neither in local storage nor on S3.")


def artifact_locate(
    backup_record: BackupRecord,
    workdir: Path,
    *,
    want: str = ARTIFACT,
    decryption_keys: list[str] | None = None,
    progress: ByteProgress | None = None,
) -> ArtifactCopies:
    """Looks for a copy of the record's artifact whose SHA-256 and size match the catalog: the local one,
    else the S3 one. Never raises for a bad or missing copy: the result says.

    `want` is what the caller needs: the ARTIFACT as a file here (an S3 copy is downloaded into
    `workdir`), only its CHECKSUM proven (an S3 copy is streamed through the hash, nothing written), or
    its decoded DUMP in `workdir` (an S3 copy is streamed, hashed and decoded in one pass: the artifact
    itself never lands on disk, and the dump is used only once its checksum is proven)."""
    if backup_record.status not in READABLE_STATUSES:
        raise RestoreError(f"Backup #{backup_record.pk} is {backup_record.status}, not a usable backup.")
    found = ArtifactCopies(backup_record=backup_record)
    name = backup_record.storage_name
    local = local_storage()
    if name and local.exists(name):
        path = Path(local.path(name))
        with open(path, "rb") as handle:
            digest, size = sha256_of(handle)
        if _matches(backup_record, digest, size):
            found.path, found.place, found.where, found.copies[LOCAL] = path, LOCAL, str(path), PRESENT
            if want == DUMP:
                found.decoded = artifact_decode(path, workdir, decryption_keys=decryption_keys, progress=progress)
            return found
        found.copies[LOCAL] = DAMAGED
        found.damage[LOCAL] = f"{path} is damaged ({_differs(backup_record, digest, size)})"
    elif name and backup_record.local_presence:
        found.copies[LOCAL], found.damage[LOCAL] = MISSING, f"{local.path(name)} is missing"
    remote = s3_storage()
    if name and backup_record.uploaded_to_s3 and remote is not None:
        key = backup_record.s3_key or s3_key(remote, name)
        where = s3_url(remote, key=key)
        try:
            if not remote.exists(name):
                found.copies[S3], found.damage[S3] = MISSING, f"{where} is missing"
                return _without_missing_only(found)
            digest, size, result = _s3_read(
                S3ObjectReader(remote, key), backup_record, workdir, want, decryption_keys, progress
            )
        except (ArtifactWriteError, EncryptionError, NotABackupError):
            raise
        except Exception as exc:  # boto3 errors of many kinds: S3 says nothing about the copy
            found.unreachable = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            return _without_missing_only(found)
        if _matches(backup_record, digest, size):
            found.place, found.where, found.copies[S3] = S3, where, PRESENT
            found.path = result if isinstance(result, Path) else None
            found.decoded = result if isinstance(result, DecodedDump) else None
            return found
        found.copies[S3], found.damage[S3] = DAMAGED, f"{where} is damaged ({_differs(backup_record, digest, size)})"
    return _without_missing_only(found)


class _HashingReader:
    """Passes a stream through SHA-256 as it is read."""

    def __init__(self, source) -> None:
        self._source, self.sha256, self.size = source, hashlib.sha256(), 0

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        data = self._source.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK_SIZE):
            pass

    def tell(self) -> int:
        return self.size

    def readable(self) -> bool:
        return True


def _s3_read(source, backup_record, workdir: Path, want: str, keys, progress):
    """Streams an S3 copy once: into a file (ARTIFACT), through the hash only (CHECKSUM), or decoded
    (DUMP). Returns its SHA-256, size and the file or decoded dump; what a damaged copy produced is removed."""
    hashing = _HashingReader(source)
    result = None
    try:
        if want == DUMP:
            label = f"the S3 copy of backup #{backup_record.pk}"
            keys = ring_passphrases() if keys is None else keys
            try:
                result = _decode_into(hashing, label, workdir / "decoded.dump", keys=keys, progress=progress)
            except (NotABackupError, EncryptionError):
                (workdir / "decoded.dump").unlink(missing_ok=True)
                hashing.drain()  # damage of the copy, or a real refusal: the checksum tells which
                if _matches(backup_record, hashing.sha256.hexdigest(), hashing.size):
                    raise
        elif want == ARTIFACT:
            result = workdir / Path(backup_record.storage_name).name
            with open(result, "wb", buffering=0) as sink:
                while chunk := hashing.read(CHUNK_SIZE):
                    write_all(sink, chunk, result)
        hashing.drain()
    finally:
        source.close()
    digest = hashing.sha256.hexdigest()
    if result is not None and not _matches(backup_record, digest, hashing.size):
        (result.path if isinstance(result, DecodedDump) else result).unlink(missing_ok=True)
    return digest, hashing.size, result


def _without_missing_only(found: ArtifactCopies) -> ArtifactCopies:
    # A failure that is only "missing" is worded as such by failure(), not as damage.
    if all(state == MISSING for state in found.copies.values()):
        found.damage = {}
    return found


def _matches(backup_record: BackupRecord, digest: str, size: int) -> bool:
    return digest == backup_record.sha256 and (backup_record.size_bytes is None or size == backup_record.size_bytes)


def _differs(backup_record: BackupRecord, digest: str, size: int) -> str:
    return (
        f"SHA-256 {digest[:16]}…, {size} bytes; the catalog recorded {backup_record.sha256[:16]}…, "
        f"{backup_record.size_bytes} bytes"
    )


def artifact_fetch(backup_record: BackupRecord, workdir: Path) -> ArtifactCopies:
    """artifact_locate, raising ChecksumMismatch / RestoreError when no good copy exists."""
    found = artifact_locate(backup_record, workdir)
    if not found.ok:
        raise found.failure()
    return found


def record_decryption_keys(backup_record: BackupRecord) -> list[str]:
    """The ring keys that can decrypt a managed backup ([] when it is not encrypted).

    Raises KeyUnavailable when its key is not in the ring: checked before anything else is done."""
    if not backup_record.encrypted:
        return []
    keys = ring_keys_for(backup_record.encryption_key_id, what=f"backup #{backup_record.pk}")
    return [key.passphrase for key in keys]


def ring_passphrases() -> list[str]:
    """Every ring key, for a file whose key is not known."""
    return [key.passphrase for key in key_ring()]


@dataclass
class FileCheck:
    manifest: dict  # the manifest beside the file, or {}
    verified_against: str  # the sidecar or manifest path the checksum matched; "" when not verified


def file_check(path: Path, *, verify: bool = True) -> FileCheck:
    """Checks a backup file given by path before anything is done with it: it exists, it looks like a
    backup, and its SHA-256 matches its sidecar (`<file>.sha256`) or, for an artifact copied out of
    storage, its manifest. Without either it is refused unless `verify` is off."""
    if not path.is_file():
        raise RestoreError(f"{path} does not exist or is not a file.")
    with open(path, "rb") as handle:
        if sniff_layers(handle.read(64)) == "unknown":
            raise NotABackupError(f"{path} is not a backup (no PostgreSQL archive, SQL or SQLite content).")
    manifest = manifest_beside(path) or {}
    expected, source = sidecar_digest(path), sidecar_path(path)
    if expected is None and manifest.get("sha256"):
        expected, source = manifest["sha256"], path.with_name(path.name + ".manifest.json")
    if not verify:
        return FileCheck(manifest=manifest, verified_against="")
    if expected is None:
        raise ChecksumUnavailable(
            f"{path} has no checksum file beside it ({sidecar_path(path).name}), so it cannot be verified. "
            "Nothing was restored."
        )
    with open(path, "rb") as handle:
        digest, size = sha256_of(handle)
    if digest != expected:
        raise ChecksumMismatch(
            f"{path} is damaged or truncated: its SHA-256 is {digest[:16]}… ({size} bytes), {source.name} says "
            f"{expected[:16]}…. Nothing was restored."
        )
    return FileCheck(manifest=manifest, verified_against=str(source))


def artifact_decode(
    path: Path, workdir: Path, *, decryption_keys: list[str] | None = None, progress: ByteProgress | None = None
) -> DecodedDump:
    """Decrypts/decompresses `path` into `workdir`; refuses files that are not backups or are damaged.

    `decryption_keys` are the candidate keys (default: the whole ring). `progress(read, written)` gets
    the artifact bytes read and the dump bytes written after each chunk."""
    keys = ring_passphrases() if decryption_keys is None else decryption_keys
    try:
        with open(path, "rb") as source:
            return _decode_into(source, str(path), workdir / "decoded.dump", keys=keys, progress=progress)
    except FileNotFoundError as exc:
        raise RestoreError(f"{path} does not exist.") from exc


def _decode_into(source, label: str, target: Path, *, keys: list[str], progress: ByteProgress | None) -> DecodedDump:
    """Peels the layers off the stream `source` into the file `target` (`label` names the source in messages)."""
    size = 0
    try:
        reader, layers = decoded_reader(source, decryption_keys=keys)
        kind = layers[-1]
        if kind == "unknown":
            what = " inside " + "+".join(layers[:-1]) if len(layers) > 1 else ""
            raise NotABackupError(f"{label} is not a backup (no PostgreSQL archive, SQL or SQLite content{what}).")
        with open(target, "wb", buffering=0) as sink:
            while chunk := reader.read(CHUNK_SIZE):
                size += _write_decoded(sink, chunk, target)
                if progress is not None:
                    progress(source.tell(), size)
    except (EncryptionError, ArtifactWriteError):
        raise
    except FileNotFoundError:
        raise
    except (zstandard.ZstdError, EOFError, zlib.error, OSError) as exc:
        raise NotABackupError(f"{label} is damaged or truncated: {exc}") from exc
    if kind == "plain" and PLAIN_DUMP_END not in _tail(target):
        raise NotABackupError(f"{label} is truncated: the SQL dump does not end with PostgreSQL's completion mark.")
    return DecodedDump(
        path=target, fmt=FORMAT_OF_LAYER[kind], engine=ENGINE_OF_LAYER[kind], layers=layers, size_bytes=size
    )


def _write_decoded(sink, chunk: bytes, target: Path) -> int:
    # Disk full in the work folder is not damage of the backup: say where space ran out.
    try:
        return write_all(sink, chunk, target)
    except ArtifactWriteError as exc:
        raise ArtifactWriteError(f"Cannot decode the backup into {target.parent}: {exc.__cause__.strerror}.") from exc


def _tail(path: Path, size: int = 512) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - size))
        return handle.read()
