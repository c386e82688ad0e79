"""An export or import whose process is SIGKILLed: nothing under the final name, the partial copy of the
data only its owner can read, and the next run in that folder removes it and marks the dead run failed."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from dbops.exceptions import SnapshotLaterChanges
from dbops.models import DataTransferRun, Snapshot
from dbops.models.datamigration import INTERRUPTED
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.formats.base import OWNER_FILE
from dbops.services.datamigration.snapshots import snapshot_discard, snapshot_rollback
from multipult.core.models import Role
from tests.commands import run_command
from tests.dbops.commandline import child_database_env
from tests.dbops.services.datamigration.helpers import fingerprint, seed
from tests.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # the child process must see the seeded rows

KILLED_EXPORT = (
    "import os, signal, sys, django; django.setup();"
    "from dbops.services.datamigration.exports import export_data;"
    "export_data(entities=None, output=sys.argv[1], fmt=sys.argv[2],"
    " progress=lambda *progress: os.kill(os.getpid(), signal.SIGKILL))"
)


def _killed_export(target, fmt: str) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "multipult.settings", **child_database_env()}
    child = subprocess.run(
        [sys.executable, "-c", KILLED_EXPORT, str(target), fmt], cwd=ROOT, env=env, capture_output=True
    )
    assert child.returncode == -9, child.stderr.decode()


@pytest.mark.parametrize(("fmt", "name"), [("json", "out.json"), ("jsonl", "out.jsonl"), ("csv", "out.zip")])
def test_a_killed_export_leaves_only_a_private_partial_which_the_next_export_removes(tmp_path, fmt, name):
    seed(scale=0.05)
    target = tmp_path / name
    _killed_export(target, fmt)
    # Nothing under the final name; the partial copy readable by its owner only; the run left running
    assert not target.exists()
    (leftover,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    assert (leftover / OWNER_FILE).is_file()
    partial = leftover / "out"
    assert partial.exists() and stat.S_IMODE(partial.stat().st_mode) == 0o600
    assert stat.S_IMODE(leftover.stat().st_mode) == 0o700
    killed = DataTransferRun.objects.get()
    assert killed.status == DataTransferRun.Status.RUNNING and killed.pid

    # The next export in the folder (another target) removes the dead one's folder and fails its run
    export_data(entities="roles", output=tmp_path / "next.jsonl", fmt="jsonl")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["next.jsonl"]
    killed.refresh_from_db()
    assert killed.status == DataTransferRun.Status.FAILED and killed.error == INTERRUPTED


def test_a_live_exports_folder_is_left_alone(tmp_path):
    # A folder whose owner is alive (this very process) is another export at work, not a leftover
    seed(scale=0.02)
    live = tmp_path / ".other.jsonl.abcd"
    live.mkdir()
    (live / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    (live / "out").write_text("{}")
    export_data(entities="roles", output=tmp_path / "next.jsonl", fmt="jsonl")
    assert (live / "out").read_text() == "{}"


KILLED_IMPORT = (
    "import os, signal, sys, django; django.setup();"
    "from dbops.services.datamigration import snapshots;"
    "snapshots.snapshot_seal = lambda **kwargs: os.kill(os.getpid(), signal.SIGKILL);"  # after its write, uncommitted
    "from dbops.services.datamigration.imports import import_data;"
    "import_data(input_path=sys.argv[1], fmt='jsonl', mode='upsert', snapshot=True, allow_privileged=True)"
)


def test_the_snapshot_of_a_killed_import_does_not_roll_back_later_changes_unasked(tmp_path):
    seed(scale=0.05)
    target = tmp_path / "all.jsonl"
    export_data(entities=None, output=target, fmt="jsonl")
    role = Role.objects.order_by("pk").first()
    Role.objects.filter(pk=role.pk).update(description="before the import")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "multipult.settings", **child_database_env()}
    child = subprocess.run([sys.executable, "-c", KILLED_IMPORT, str(target)], cwd=ROOT, env=env, capture_output=True)
    assert child.returncode == -9, child.stderr.decode()
    # The import never committed; its snapshot is left, unsealed, and its run says running
    assert Role.objects.get(pk=role.pk).description == "before the import"
    snapshot = Snapshot.objects.get()
    try:
        assert snapshot.checksums_after_import == {}
        (listed,) = json.loads(run_command("list_snapshots", "--json"))["snapshots"]
        assert listed["id"] == snapshot.id and listed["import_finished"] is False
        assert "(unfinished)" in run_command("list_snapshots")
        # A change made after it: rolling back to the snapshot would silently discard it
        Role.objects.filter(pk=role.pk).update(description="written later")
        state = fingerprint()
        with pytest.raises(SnapshotLaterChanges, match=r"which did not finish \(running\).*Nothing changed"):
            snapshot_rollback(snapshot_id=snapshot.id)
        assert fingerprint() == state
        snapshot_rollback(snapshot_id=snapshot.id, discard_later_changes=True)  # asked for: restored as it was
        assert Role.objects.get(pk=role.pk).description == "before the import"
    finally:
        snapshot_discard(snapshot_id=snapshot.id)  # its copies live in the operations database, not the test's
