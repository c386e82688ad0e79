"""Taking backups: `backup_create` (managed, recorded in the catalog), `backup_export` (a plain file
the user names, for `backup_db --output`), `backup_delete`, `backup_upload_retry`.

The pipeline streams dump -> compress -> [encrypt] -> hash -> `<name>.partial`, renamed only on success,
then writes the manifest beside the artifact (a plain file gets a `<file>.sha256` sidecar instead) and,
if asked, copies both to S3. A failure at any of these writes (disk full included) leaves the record
`failed` and nothing complete-looking behind.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from dbops.artifacts.copies import artifact_copies_delete
from dbops.artifacts.keyring import RingKey, ring_newest_key
from dbops.artifacts.manifest import manifest_name, manifest_of, manifest_write
from dbops.artifacts.pipeline import COMPRESSION_EXTENSIONS, PipelineWriter, sha256_of
from dbops.artifacts.sidecar import sidecar_path, sidecar_write
from dbops.artifacts.storage import (
    LOCAL,
    PARTIAL_SUFFIX,
    S3,
    atomic_writer,
    delete_everywhere,
    local_path,
    local_storage,
    s3_key,
    s3_storage,
    s3_upload,
)
from dbops.artifacts.workdir import work_folder
from dbops.engines import Connector, get_connector
from dbops.exceptions import ArtifactWriteError, BackupError, DbopsError, OutputExists, UploadError
from dbops.models import BackupRecord
from dbops.services.backups.catalog import backup_mark_stale, catalog_sync
from dbops.services.backups.copies import backup_copies_make
from dbops.services.backups.pinning import backup_pinned_refusal
from dbops.services.backups.sinks import artifact_discard, artifact_sink, place_storage, uploads_abort_unfinished
from dbops.signals import backup_deleted, signal_send

logger = logging.getLogger(__name__)

__all__ = [
    "backup_create",
    "backup_delete",
    "backup_export",
    "backup_upload_retry",
    "backups_list",
    "catalog_sync",
]

ByteProgress = Callable[[int, int], None]  # (dump bytes read, artifact bytes written)
TransferProgress = Callable[[int, int], None]  # (bytes sent, bytes to send): the S3 copy of a local backup
HEARTBEAT_SECONDS = 10
COMPRESSIONS = tuple(BackupRecord.Compression.values)
PARALLEL_FORMAT = BackupRecord.Format.DIRECTORY
MAX_DUMP_JOBS = 32  # each job is one more database session


def _resolve_format(connector: Connector, fmt: str) -> str:
    if fmt == "custom" and "custom" not in connector.formats:
        return connector.default_format  # "custom" means the engine's native format (SQLite: the file)
    if fmt not in connector.formats:
        raise BackupError(f"Format {fmt!r} is not available for {connector.engine}; use one of {connector.formats}.")
    return fmt


def _parallel_format(connector: Connector, fmt: str, jobs: int) -> str:
    """The format of a dump with `jobs` workers: the engine's parallel one (directory) when jobs > 1."""
    if not 1 <= jobs <= MAX_DUMP_JOBS:
        raise BackupError(f"Dump jobs must be 1 to {MAX_DUMP_JOBS}; got {jobs}.", parameter="jobs")
    if jobs == 1:
        return fmt
    if PARALLEL_FORMAT not in connector.formats:
        raise BackupError(f"{connector.engine} backups cannot be dumped in parallel; use 1 job.", parameter="jobs")
    if fmt not in ("custom", PARALLEL_FORMAT):
        raise BackupError(f"A parallel dump is a directory archive, not {fmt!r}; drop the format.", parameter="jobs")
    return PARALLEL_FORMAT


def _encryption_key(encrypt: bool) -> RingKey | None:
    return ring_newest_key() if encrypt else None


def _storage_folder(connector: Connector) -> str:
    return Path(connector.database_name).stem if connector.engine == "sqlite" else connector.database_name


def _with_heartbeat(backup_record: BackupRecord, progress: ByteProgress | None) -> ByteProgress:
    """Progress callback that also refreshes heartbeat_at, so a killed run is detectably stale."""
    last_beat = time.monotonic()

    def report(read: int, written: int) -> None:
        nonlocal last_beat
        if progress is not None:
            progress(read, written)
        if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
            last_beat = time.monotonic()
            BackupRecord.objects.filter(pk=backup_record.pk).update(heartbeat_at=timezone.now())

    return report


def _remove_partials(folder: str) -> None:
    """Leftovers of killed runs (only called under the database's lock, so none is in use)."""
    storage = local_storage()
    try:
        _, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        if name.endswith(PARTIAL_SUFFIX):
            storage.delete(f"{folder}/{name}")


def compression_parse(text: str) -> tuple[str, int | None]:
    """ "zstd", "zstd:LEVEL" (1-22), "gzip" or "none" -> (compression, zstd level or None)."""
    compression, colon, level = text.partition(":")
    if compression not in COMPRESSIONS or (colon and compression != "zstd"):
        raise BackupError(
            f"Unknown compression {text!r}; use zstd[:LEVEL], {', '.join(c for c in COMPRESSIONS if c != 'zstd')}.",
            parameter="compression",
        )
    if not colon:
        return compression, None
    if not level.isdigit() or not 1 <= int(level) <= 22:
        raise BackupError(f"The zstd level must be 1 to 22; got {level!r}.", parameter="compression")
    return compression, int(level)


def backup_create(
    *,
    database: str = DEFAULT_DB_ALIAS,
    compression: str = "zstd",
    fmt: str = "custom",
    upload_s3: bool = False,
    local_copy: bool = True,
    encrypt: bool = False,
    tag: str = "",
    kind: str = BackupRecord.Kind.FULL,
    triggered_by: str = BackupRecord.Trigger.CLI,
    triggered_by_user: str = "",
    progress: ByteProgress | None = None,
    upload_progress: TransferProgress | None = None,
    wait: bool = False,
    jobs: int = 1,
) -> BackupRecord:
    """Takes a managed backup and returns its (succeeded) record. Without `local_copy` (S3 only) the
    pipeline streams straight into an S3 multipart upload and no local artifact is ever written.
    `jobs` > 1 dumps with that many workers into the engine's parallel format (PostgreSQL: directory,
    spooled in a work folder, then packed into one artifact).

    Raises BackupLockedError if another backup/restore of the database runs (unless `wait`),
    BackupError if the dump fails (record left `failed`), and UploadError (carrying
    `.backup_record`) when the local backup succeeded but the S3 copy failed, or when a straight-to-S3
    backup failed in S3 (record `failed`, its multipart upload aborted)."""
    compression, compression_level = compression_parse(compression)
    if kind not in BackupRecord.Kind.values:
        raise BackupError(f"Unknown backup kind {kind!r}; use one of {', '.join(BackupRecord.Kind.values)}.")
    if triggered_by not in BackupRecord.Trigger.values:
        raise BackupError(f"Unknown trigger {triggered_by!r}; use one of {', '.join(BackupRecord.Trigger.values)}.")
    if len(tag) > BackupRecord._meta.get_field("tag").max_length:
        raise BackupError("The tag is longer than 64 characters.", parameter="tag")
    key = _encryption_key(encrypt)
    if upload_s3 and s3_storage() is None:
        raise UploadError(
            "An upload to S3 needs S3_BACKUP_BUCKET (and S3_ENDPOINT_URL for MinIO/moto).", parameter="upload_s3"
        )
    if not local_copy and not upload_s3:
        raise BackupError("A backup without a local copy must go to S3.", parameter="local_copy")
    connector = get_connector(database)
    fmt = _resolve_format(connector, _parallel_format(connector, fmt, jobs))
    connector.preflight()
    place = LOCAL if local_copy else S3
    spec = BackupSpec(
        compression,
        fmt,
        key,
        tag,
        kind,
        triggered_by,
        triggered_by_user,
        place,
        compression_level=compression_level,
        jobs=jobs,
    )
    with connector.lock(wait=wait):
        backup_record = backup_create_locked(connector=connector, spec=spec, progress=progress)
    failure = None
    if upload_s3 and local_copy:
        try:
            _upload(backup_record, progress=upload_progress)
        except UploadError as exc:
            failure = exc
    try:
        backup_copies_make(backup_record=backup_record)
    except UploadError as exc:  # after a failed upload too: the copies do not depend on S3
        if failure is None:
            failure = exc
        else:
            failure.add_note(str(exc))
    if failure is not None:
        raise failure
    return backup_record


@dataclass(frozen=True)
class BackupSpec:
    """What a managed backup is to be (checked by backup_create before it is built)."""

    compression: str
    fmt: str
    encryption_key: RingKey | None
    tag: str
    kind: str
    triggered_by: str
    triggered_by_user: str
    place: str = LOCAL  # local storage (then maybe copied to S3), or straight to S3 with no local artifact
    compression_level: int | None = None  # zstd only; None: the pipeline's default
    jobs: int = 1  # dump workers; > 1 only with the engine's parallel format


def safety_backup_spec(*, fmt: str, source: str, user: str) -> BackupSpec:
    """The safety backup before a restore: zstd, unencrypted, tagged with what is about to be restored."""
    tag = f"before restore of {source}"[:64]
    return BackupSpec("zstd", fmt, None, tag, BackupRecord.Kind.SAFETY, BackupRecord.Trigger.RESTORE, user)


def backup_create_locked(*, connector: Connector, spec: BackupSpec, progress: ByteProgress | None) -> BackupRecord:
    """backup_create's work, for callers that already hold the database's lock (restore's safety backup)."""
    place = spec.place
    compression, fmt, encryption_key, tag = spec.compression, spec.fmt, spec.encryption_key, spec.tag
    kind, triggered_by, triggered_by_user = spec.kind, spec.triggered_by, spec.triggered_by_user
    folder = _storage_folder(connector)
    encrypt = encryption_key is not None
    backup_mark_stale(database_name=connector.database_name)
    _remove_partials(folder)
    notes = uploads_abort_unfinished(folder) if place == S3 else []
    now = timezone.now()
    backup_record = BackupRecord.objects.create(
        kind=kind,
        status=BackupRecord.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        engine=connector.engine,
        database_alias=connector.alias,
        database_name=connector.database_name,
        format=fmt,
        compression=compression,
        encrypted=encrypt,
        encryption_key_id=encryption_key.key_id if encrypt else "",
        tag=tag,
        triggered_by=triggered_by,
        triggered_by_user=triggered_by_user,
        server_version=connector.server_version(),
        migration_state=connector.migration_state(),
    )
    suffix = connector.artifact_extensions[fmt] + COMPRESSION_EXTENSIONS[compression] + (".enc" if encrypt else "")
    backup_record.storage_name = f"{folder}/{now:%Y%m%dT%H%M%SZ}-{kind}-{backup_record.pk}{suffix}"
    backup_record.save(update_fields=["storage_name"])
    started = time.perf_counter()
    artifact_written = False
    try:
        with artifact_sink(backup_record, place) as handle, _dump_spool(spec.jobs) as spool:
            pipeline = PipelineWriter(
                handle,
                compression=compression,
                compression_level=spec.compression_level,
                encryption_key=encryption_key.passphrase if encrypt else None,
                progress=_with_heartbeat(backup_record, progress),
            )
            dump_result = connector.dump(pipeline, fmt=fmt, jobs=spec.jobs, spool=spool)
            pipeline.close()
        artifact_written = True
        backup_record.status = BackupRecord.Status.SUCCEEDED
        backup_record.finished_at = timezone.now()
        backup_record.heartbeat_at = backup_record.finished_at
        backup_record.duration_seconds = round(time.perf_counter() - started, 3)
        backup_record.size_bytes = pipeline.size
        backup_record.sha256 = pipeline.sha256
        backup_record.row_counts = dump_result.row_counts
        backup_record.tool_version = dump_result.tool_version
        if place == LOCAL:
            backup_record.location = str(local_path(backup_record.storage_name))
            backup_record.local_presence = BackupRecord.Presence.PRESENT
        else:
            backup_record.uploaded_to_s3, backup_record.s3_presence = True, BackupRecord.Presence.PRESENT
            backup_record.s3_key, backup_record.s3_upload_id = s3_key(s3_storage(), backup_record.storage_name), ""
        # Manifest first: a record never claims more than storage holds.
        manifest_write(place_storage(place), backup_record.storage_name, manifest_of(backup_record))
        backup_record.save()
    except BaseException as exc:
        if artifact_written:  # the manifest or the record could not be written after it
            artifact_discard(backup_record.storage_name, place)
        _mark_failed(backup_record, exc)
        for note in notes:
            exc.add_note(note)
        if isinstance(exc, ArtifactWriteError):
            raise ArtifactWriteError(f"Backup #{backup_record.pk} failed: {exc} Nothing was kept.") from exc
        if isinstance(exc, UploadError) and place == S3:
            more = "".join(f" {note}" for note in getattr(exc, "__notes__", ()))
            failure = UploadError(f"Backup #{backup_record.pk} failed: {exc} Nothing was kept.{more}")
            failure.backup_record = None  # nothing is kept anywhere: no "kept locally" line
            raise failure from exc
        if isinstance(exc, DbopsError) or not isinstance(exc, Exception):
            raise
        raise BackupError(f"Backup failed: {exc}") from exc
    logger.info(
        "backup %s succeeded: %s, %d bytes from %d dump bytes",
        backup_record.pk,
        backup_record.storage_name,
        pipeline.size,
        pipeline.raw.size,
    )
    return backup_record


@contextmanager
def _dump_spool(jobs: int) -> Iterator[Path | None]:
    """A work folder for the parts of a parallel dump (removed after it, or by the next run if killed)."""
    if jobs == 1:
        yield None
        return
    with work_folder(purpose="parallel dump") as folder:
        yield folder


def _mark_failed(backup_record: BackupRecord, exc: BaseException) -> None:
    backup_record.status = BackupRecord.Status.FAILED
    backup_record.finished_at = timezone.now()
    backup_record.error = str(exc) or type(exc).__name__
    backup_record.local_presence = BackupRecord.Presence.NONE
    backup_record.save(update_fields=["status", "finished_at", "error", "local_presence"])


def _upload(backup_record: BackupRecord, *, progress: TransferProgress | None = None) -> None:
    remote = s3_storage()

    def manifest_beside_upload(key: str) -> None:
        backup_record.uploaded_to_s3, backup_record.s3_key, backup_record.upload_error = True, key, ""
        manifest_write(remote, backup_record.storage_name, manifest_of(backup_record))

    fields = ["uploaded_to_s3", "s3_key", "upload_error", "s3_presence"]
    try:
        s3_upload(
            local_path(backup_record.storage_name),
            backup_record.storage_name,
            after_upload=manifest_beside_upload,
            progress=progress,
        )
    except UploadError as exc:
        backup_record.uploaded_to_s3 = False
        backup_record.upload_error = str(exc)
        backup_record.save(update_fields=fields)
        manifest_write(local_storage(), backup_record.storage_name, manifest_of(backup_record))
        exc.backup_record = backup_record
        raise
    backup_record.s3_presence = BackupRecord.Presence.PRESENT
    backup_record.save(update_fields=fields)
    manifest_write(local_storage(), backup_record.storage_name, manifest_of(backup_record))


def backup_upload_retry(*, backup_record: BackupRecord) -> BackupRecord:
    """Copies a succeeded local backup to S3 again (after an upload failure)."""
    if backup_record.status != BackupRecord.Status.SUCCEEDED:
        raise UploadError(f"Backup #{backup_record.pk} is {backup_record.status}; only succeeded backups upload.")
    artifact = local_path(backup_record.storage_name) if backup_record.storage_name else None
    if artifact is None or not artifact.exists():
        raise UploadError(f"Backup #{backup_record.pk} has no local artifact to upload.")
    with open(artifact, "rb") as handle:
        digest, _ = sha256_of(handle)
    if digest != backup_record.sha256:
        raise UploadError(f"Backup #{backup_record.pk}: the local artifact no longer matches its checksum.")
    _upload(backup_record)
    return backup_record


def backup_delete(*, backup_record: BackupRecord, reason: str) -> list[str]:
    """Removes the local and S3 artifact and manifests, and marks the record deleted; then sends
    backup_deleted (the project's audit log). Returns the failures of its receivers (also logged).
    A pinned backup is refused (BackupError): unpin it first."""
    if refusal := backup_pinned_refusal(backup_record):
        raise BackupError(refusal)
    names = [backup_record.storage_name, manifest_name(backup_record.storage_name)]
    if backup_record.kind == BackupRecord.Kind.BASE:  # the server's own backup_manifest sits beside it
        names.append(str(PurePosixPath(backup_record.storage_name).parent / "backup_manifest"))
    removed = delete_everywhere(names) + artifact_copies_delete(names) if backup_record.storage_name else []
    backup_record.status = BackupRecord.Status.DELETED
    backup_record.deleted_at = timezone.now()
    backup_record.save(update_fields=["status", "deleted_at"])
    return signal_send(
        backup_deleted,
        sender=BackupRecord,
        backup_record=backup_record,
        reason=reason,
        removed=removed,
        deleted_at=backup_record.deleted_at,
    )


@dataclass
class ExportResult:
    path: Path
    sidecar: Path  # `<file>.sha256`, for `sha256sum -c` and restore_db's check
    size_bytes: int
    sha256: str
    fmt: str
    compression: str
    row_counts: dict[str, int]
    seconds: float


def _compression_for(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".gz": "gzip", ".zst": "zstd"}.get(suffix, "none")


def backup_export(
    *,
    output: Path,
    database: str = DEFAULT_DB_ALIAS,
    fmt: str = "plain",
    compression: str | None = None,
    encrypt: bool = False,
    overwrite: bool = False,
    progress: ByteProgress | None = None,
) -> ExportResult:
    """Writes one backup to a file the caller names (no catalog record), with its checksum sidecar;
    compression from the suffix (.gz, .zst) unless given. Both appear only when complete, or neither."""
    output = Path(output)
    compression = compression or _compression_for(output)
    if compression not in COMPRESSIONS:
        raise BackupError(f"Unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}.")
    for existing in (output, sidecar_path(output)):
        if existing.exists() and not overwrite:
            raise OutputExists(f"{existing} already exists; choose another name.", parameter="output")
    if not output.parent.is_dir():
        raise BackupError(f"Folder {output.parent} does not exist.", parameter="output")
    key = _encryption_key(encrypt)
    connector = get_connector(database)
    fmt = _resolve_format(connector, fmt)
    connector.preflight()
    started = time.perf_counter()
    sidecar = None
    try:
        with connector.lock(), atomic_writer(output, replace=overwrite) as handle:
            passphrase = key.passphrase if key else None
            pipeline = PipelineWriter(handle, compression=compression, encryption_key=passphrase, progress=progress)
            dump_result = connector.dump(pipeline, fmt=fmt)
            pipeline.close()
            # Inside the block: a sidecar that cannot be written means no backup file either.
            sidecar = sidecar_write(output, pipeline.sha256, replace=overwrite)
    except BaseException as exc:
        if sidecar is not None:  # the file's own rename failed after its sidecar's
            sidecar.unlink(missing_ok=True)
        if isinstance(exc, ArtifactWriteError):
            raise ArtifactWriteError(f"Backup failed: {exc} Nothing was written.") from exc
        raise
    return ExportResult(
        path=output,
        sidecar=sidecar,
        size_bytes=pipeline.size,
        sha256=pipeline.sha256,
        fmt=fmt,
        compression=compression,
        row_counts=dump_result.row_counts,
        seconds=time.perf_counter() - started,
    )


def backups_list(*, status: list[str] | None = None, database: str | None = None, limit: int | None = None):
    """Catalog records, newest first."""
    records = BackupRecord.objects.all()
    if status:
        records = records.filter(status__in=status)
    if database:
        records = records.filter(database_alias=database)
    return records[:limit] if limit else records
