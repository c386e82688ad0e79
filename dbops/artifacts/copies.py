"""Copies of an artifact in further storages (DBOPS["COPY_TARGETS"]): written through the storage,
read back and proven against the catalog's SHA-256 and size before they count (a copy that does not
match is removed), and the manifest beside it last, so a manifest there always has a good artifact."""

from __future__ import annotations

from pathlib import Path

from django.core.files.storage import Storage, storages

from dbops.artifacts.manifest import manifest_write
from dbops.artifacts.pipeline import sha256_of
from dbops.artifacts.storage import storage_put
from dbops.conf import dbops_setting
from dbops.exceptions import ChecksumMismatch


def copy_target_storages() -> list[tuple[str, Storage]]:
    return [(alias, storages[alias]) for alias in dbops_setting("COPY_TARGETS")]


def artifact_copy_verified(
    storage: Storage, name: str, source: Path, *, sha256: str, size: int, manifest: dict
) -> None:
    """Stores `source` as `name` in `storage`, proves the stored bytes, then writes `manifest` beside it."""
    storage_put(storage, name, source)
    with storage.open(name, "rb") as stored:
        digest, stored_size = sha256_of(stored)
    if digest != sha256 or stored_size != size:
        storage.delete(name)
        raise ChecksumMismatch(f"the copy read back has SHA-256 {digest[:12]}… ({stored_size} bytes), not the backup's")
    manifest_write(storage, name, manifest)


def artifact_copies_delete(names: list[str]) -> list[str]:
    """Removes the given names from every copy target; returns what was removed, as `alias:name`."""
    removed = []
    for alias, storage in copy_target_storages():
        for name in names:
            if storage.exists(name):
                storage.delete(name)
                removed.append(f"{alias}:{name}")
    return removed
