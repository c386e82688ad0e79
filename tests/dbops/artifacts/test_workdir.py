"""Work folders of restores and verifications: a folder whose owner was SIGKILLed is removed by the
next clean-up, one whose owner lives is left alone. Real processes, real flock, real SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import pytest

from dbops.artifacts.workdir import OWNER_LOCK, WORK_PREFIX, work_folder, work_folders_remove_dead
from tests.paths import ROOT

OWNER = """
import time
from pathlib import Path
from dbops.artifacts.workdir import work_folder
with work_folder(purpose="restore") as folder:
    (folder / "decoded.dump").write_bytes(b"x" * 1000)
    print(folder, flush=True)
    time.sleep(300)
"""


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def start_owner(temp_root) -> tuple[subprocess.Popen, str]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={"TMPDIR": str(temp_root)}
    )
    return owner, owner.stdout.readline().strip()


def test_a_dead_owners_folder_is_removed_and_a_live_owners_kept(temp_root):
    dead, dead_folder = start_owner(temp_root)
    live, live_folder = start_owner(temp_root)
    try:
        dead.kill()
        dead.wait()

        removed, failed = work_folders_remove_dead()

        assert [str(folder.path) for folder in removed] == [dead_folder] and failed == []
        assert removed[0].owner == f"pid {dead.pid} restore"
        assert sorted(str(path) for path in temp_root.iterdir()) == [live_folder]
    finally:
        live.kill()
        live.wait()
    assert [str(folder.path) for folder in work_folders_remove_dead()[0]] == [live_folder]
    assert list(temp_root.iterdir()) == []


def test_a_folder_is_findable_locked_while_in_use_and_gone_after(temp_root):
    with pytest.raises(RuntimeError), work_folder(purpose="verify") as folder:
        assert folder.parent == temp_root and folder.name.startswith(f"{WORK_PREFIX}verify-")
        assert (folder / OWNER_LOCK).is_file()
        assert work_folders_remove_dead() == ([], [])  # our own: alive
        raise RuntimeError("the restore failed")
    assert list(temp_root.iterdir()) == []


def test_nothing_to_clean_is_cheap_and_quiet(temp_root):
    (temp_root / "unrelated").mkdir()
    (temp_root / f"{WORK_PREFIX}without-lock").mkdir()  # not made by work_folder: not ours to judge
    assert work_folders_remove_dead() == ([], [])
    assert sorted(path.name for path in temp_root.iterdir()) == [f"{WORK_PREFIX}without-lock", "unrelated"]
