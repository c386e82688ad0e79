"""Checksum sidecars of plain backup files (`backup_db --output`): `<file>.sha256` beside the file, in
the format `sha256sum -c` reads (`<hex digest>  <file name>`), so `cd folder && sha256sum -c file.sha256`
checks it without this project."""

from __future__ import annotations

import re
from pathlib import Path

from dbops.artifacts.storage import atomic_writer
from dbops.exceptions import RestoreError

SIDECAR_SUFFIX = ".sha256"
_LINE = re.compile(r"^\\?(?P<digest>[0-9a-fA-F]{64}) [ *](?P<name>.+)$")


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def sidecar_text(sha256: str, file_name: str) -> str:
    if "\\" in file_name or "\n" in file_name:  # GNU coreutils' escaping of such names
        return "\\" + f"{sha256}  " + file_name.replace("\\", "\\\\").replace("\n", "\\n") + "\n"
    return f"{sha256}  {file_name}\n"


def sidecar_write(path: Path, sha256: str, *, replace: bool = False) -> Path:
    """Writes the sidecar of `path` atomically; returns its path."""
    target = sidecar_path(path)
    with atomic_writer(target, replace=replace) as handle:
        handle.write(sidecar_text(sha256, path.name).encode())
    return target


def sidecar_digest(path: Path) -> str | None:
    """The SHA-256 the sidecar of `path` records, or None when there is no sidecar."""
    target = sidecar_path(path)
    try:
        text = target.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RestoreError(f"Cannot read the checksum file {target}: {exc.strerror or exc}.") from exc
    lines = [line for line in text.splitlines() if line.strip()]
    matches = [match for line in lines if (match := _LINE.match(line.strip()))]
    if len(matches) != 1 or len(lines) != 1:
        raise RestoreError(f"{target} is not a checksum file of one file (expected `<sha256>  {path.name}`).")
    return matches[0].group("digest").lower()
