"""Import from the admin: upload, the dry run's validation result and counts, then the confirmed import
(with its snapshot), all through the real import_data on the real PostgreSQL."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from dbops.admin.imports import pending_uploads_dir, upload_path
from dbops.models import DataTransferRun, Snapshot
from dbops.services.datamigration.exports import export_data
from multipult.core.models import Role

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/dbops/datatransferrun/import/"


@pytest.fixture(autouse=True)
def own_pending_folder(settings, tmp_path):
    """Each test keeps its uploads in a folder of its own: other test processes upload at the same time."""
    settings.DBOPS = {**settings.DBOPS, "IMPORT_UPLOAD_DIR": str(tmp_path / "pending")}
    return tmp_path / "pending"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def roles_export(tmp_path) -> bytes:
    """A jsonl export of three roles, read back as the bytes a user would upload."""
    for name in ("reader", "editor", "owner"):
        Role.objects.create(name=name, description=f"the {name}")
    target = tmp_path / "roles.jsonl"
    export_data(entities="roles", output=target, fmt="jsonl")
    return target.read_bytes()


def imports():
    return DataTransferRun.objects.filter(kind=DataTransferRun.Kind.IMPORT)


def upload(client: Client, content: bytes, *, mode: str = "upsert", name: str = "roles.jsonl"):
    return client.post(IMPORT_URL, {"file": SimpleUploadedFile(name, content), "format": "jsonl", "mode": mode})


def test_preview_counts_then_confirm_imports_with_a_snapshot(superuser, roles_export):
    # given: since the export one role was renamed and one removed
    Role.objects.filter(name="editor").update(description="changed")
    Role.objects.filter(name="owner").delete()
    before = sorted(Role.objects.values_list("name", "description"))

    preview = upload(logged_in(superuser), roles_export)
    token = preview.context["confirm_form"].initial["token"]

    # then: the dry run shows what would be created and updated, and nothing changed
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "every record is valid" in html
    (item,) = preview.context["preview"].entities
    assert (item.entity, item.rows, item.created, item.updated) == ("roles", 3, 1, 2)
    assert sorted(Role.objects.values_list("name", "description")) == before
    assert not imports().exists() and not Snapshot.objects.exists()

    # when: the user confirms
    assert upload_path(token, user_id=superuser.pk).exists()
    confirmed = logged_in(superuser).post(
        IMPORT_URL, {"confirm": "1", "token": token, "format": "jsonl", "mode": "upsert"}, follow=True
    )

    # then: the file's rows are in, behind a snapshot, and the upload is gone
    assert sorted(Role.objects.values_list("name", "description")) == [
        ("editor", "the editor"),
        ("owner", "the owner"),
        ("reader", "the reader"),
    ]
    run = imports().get()
    assert run.status == DataTransferRun.Status.SUCCEEDED
    snapshot = Snapshot.objects.get()
    message = [str(message) for message in confirmed.context["messages"]][0]
    assert f"Snapshot {snapshot.id} rolls it back" in message and "roles 1 created / 2 updated" in message
    assert not upload_path(token, user_id=superuser.pk).parent.exists()


def test_an_invalid_file_lists_its_problems_and_imports_nothing(superuser, roles_export):
    lines = roles_export.decode().splitlines()
    broken = [json.loads(line) for line in lines]
    for record in broken:
        if record.get("entity") == "roles" and "data" in record:
            record["data"]["name"] = "x" * 200  # longer than the column
    before = sorted(Role.objects.values_list("name", flat=True))

    response = upload(logged_in(superuser), "\n".join(json.dumps(record) for record in broken).encode() + b"\n")

    html = response.content.decode()
    assert response.status_code == 200 and "nothing can be imported" in html
    assert "roles record 1, field &#x27;name&#x27;" in html
    assert "confirm-import" not in html
    assert sorted(Role.objects.values_list("name", flat=True)) == before
    assert not imports().exists()


def test_a_file_of_another_format_is_refused_in_one_line(superuser):
    response = upload(logged_in(superuser), b"not json at all\n")

    assert response.status_code == 200
    refusal = response.context["refusal"]
    assert "\n" not in refusal and refusal
    assert not imports().exists()


def test_import_needs_the_restore_permission(staff_user, roles_export):
    client = logged_in(staff_user)

    assert client.get(IMPORT_URL).status_code == 403
    assert upload(client, roles_export).status_code == 403
    changelist = client.get(reverse("admin:dbops_datatransferrun_changelist")).content.decode()
    assert "import-link" not in changelist


def test_a_forged_or_foreign_token_is_refused(superuser, django_user_model, roles_export):
    preview = upload(logged_in(superuser), roles_export)
    token = preview.context["confirm_form"].initial["token"]
    other = django_user_model.objects.create_superuser("other", "other@example.com", "x" * 16)
    before = sorted(Role.objects.values_list("name", flat=True))

    foreign = logged_in(other).post(IMPORT_URL, {"confirm": "1", "token": token, "format": "jsonl", "mode": "upsert"})
    forged = logged_in(superuser).post(
        IMPORT_URL, {"confirm": "1", "token": token[:-2] + "xx", "format": "jsonl", "mode": "upsert"}
    )

    assert foreign.status_code == 403 and forged.status_code == 403
    assert sorted(Role.objects.values_list("name", flat=True)) == before


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "size-found-on-reading"])
def test_a_file_over_the_upload_limit_is_refused_and_nothing_is_kept_or_imported(
    superuser, roles_export, settings, announced
):
    settings.DBOPS = {**settings.DBOPS, "IMPORT_UPLOAD_MAX_BYTES": 2000}
    kept_before = sorted(path.name for path in pending_uploads_dir().iterdir())
    roles_before = sorted(Role.objects.values_list("name", flat=True))
    big = roles_export + b"\n" * (70 << 10)  # past the limit and the form's allowance
    client = logged_in(superuser)
    if announced:
        response = upload(client, big)
        assert response.status_code == 413
        refusal = response.context["refusal"]
    else:  # the length passes (within the allowance); the file's own size is then checked by the form
        response = upload(client, roles_export + b"\n" * 3000)
        assert response.status_code == 200
        refusal = " ".join(response.context["form"].errors["file"])
    assert "larger than the 2.0\xa0KB the import page accepts" in refusal and "manage.py import_data" in refusal
    assert sorted(path.name for path in pending_uploads_dir().iterdir()) == kept_before
    assert sorted(Role.objects.values_list("name", flat=True)) == roles_before and not imports().exists()


def test_by_default_uploads_wait_in_a_folder_of_this_user_only(settings):
    settings.DBOPS = {key: value for key, value in settings.DBOPS.items() if key != "IMPORT_UPLOAD_DIR"}
    folder = pending_uploads_dir()
    assert folder == Path(tempfile.gettempdir()) / f"dbops-admin-imports-{os.getuid()}"
    facts = os.lstat(folder)
    assert stat.S_ISDIR(facts.st_mode) and facts.st_uid == os.getuid() and stat.S_IMODE(facts.st_mode) == 0o700


def _linked(folder: Path) -> None:
    real = folder.with_name("somewhere-else")
    real.mkdir(mode=0o700)
    folder.symlink_to(real)


def _open_to_others(folder: Path) -> None:
    folder.mkdir()
    folder.chmod(0o755)


def _another_owner(folder: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)  # nobody


@pytest.mark.parametrize("prepare", [_linked, _open_to_others, _another_owner], ids=["link", "mode", "owner"])
def test_a_pending_folder_someone_else_could_enter_is_refused_and_nothing_is_kept(
    superuser, roles_export, own_pending_folder, prepare
):
    prepare(own_pending_folder)  # what someone with access to /tmp could have made before the first upload
    roles_before = sorted(Role.objects.values_list("name", flat=True))
    response = upload(logged_in(superuser), roles_export)
    assert response.status_code == 500
    assert "is not private to this user" in response.context["refusal"]
    assert 'DBOPS["IMPORT_UPLOAD_DIR"]' in response.context["refusal"]
    assert not any(own_pending_folder.resolve().iterdir())  # the upload was not written there
    assert sorted(Role.objects.values_list("name", flat=True)) == roles_before and not imports().exists()
