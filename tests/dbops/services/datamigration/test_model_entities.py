"""Any installed model as an entity (`--entities app_label.Model`): exported and imported back in
dependency order, with the declared short names kept, and bad names refused before anything happens."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from django.contrib.auth.models import Group, Permission

from dbops.exceptions import PrivilegedImportRefused, UnknownEntityError
from dbops.models import Snapshot
from dbops.services.datamigration.entities import ENTITIES, resolve_entities
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from dbops.services.datamigration.snapshots import snapshot_rollback
from multipult.core.models import User
from tests.commands import command_error
from tests.dbops.services.datamigration.helpers import fingerprint

pytestmark = pytest.mark.django_db


def _entities_in(path) -> list[str]:
    names = []
    for line in path.read_text().splitlines()[1:-1]:
        name = json.loads(line)["entity"]
        if name not in names:
            names.append(name)
    return names


def test_a_declared_model_keeps_its_short_name_and_others_come_in_dependency_order():
    selected = resolve_entities("core.User_groups,auth.Group,core.User,concepts")
    assert [entity.name for entity in selected] == ["auth.Group", "users", "core.User_groups", "concepts"]
    assert ENTITIES["core.User"] is ENTITIES["users"]
    assert "password" not in ENTITIES["core.User"].field_names  # the declaration's exclude, not a new entity
    assert ENTITIES["core.User_groups"].privileged  # a membership table grants privileges, found by what it is


@pytest.mark.parametrize("fmt", ["jsonl", "sql", "csv"])
def test_a_model_nobody_declared_exports_and_imports_back_exactly(tmp_path, fmt):
    # given groups the project never declared as entities
    Group.objects.bulk_create([Group(name=f"team {index}") for index in range(5)])
    rows = list(Group.objects.order_by("pk").values_list("pk", "name"))
    target = tmp_path / {"jsonl": "g.jsonl", "sql": "g.sql", "csv": "g.zip"}[fmt]
    # when exported by label, deleted and imported again
    result = export_data(entities="auth.Group", output=target, fmt=fmt)
    assert [(item.entity, item.rows) for item in result.entities] == [("auth.Group", 5)]
    Group.objects.all().delete()
    import_data(input_path=target, fmt=fmt)
    # then every row is back as it was
    assert list(Group.objects.order_by("pk").values_list("pk", "name")) == rows


def test_group_permissions_are_privileged_and_come_after_both_ends(tmp_path):
    group = Group.objects.create(name="editors")
    group.permissions.add(Permission.objects.order_by("pk").first())
    target = tmp_path / "g.jsonl"
    export_data(entities="auth.Group_permissions,auth.Group", output=target, fmt="jsonl")
    assert _entities_in(target) == ["auth.Group", "auth.Group_permissions"]
    Group.objects.all().delete()
    state = fingerprint()
    with pytest.raises(PrivilegedImportRefused):
        import_data(input_path=target, fmt="jsonl")
    assert fingerprint() == state and not Group.objects.exists()
    import_data(input_path=target, fmt="jsonl", allow_privileged=True)
    assert list(Group.objects.get(name="editors").permissions.all()) == list(group.permissions.all())


def test_a_snapshot_of_a_model_entity_rolls_back(tmp_path):
    Group.objects.create(name="before")
    target = tmp_path / "g.jsonl"
    export_data(entities="auth.Group", output=target, fmt="jsonl")
    Group.objects.update(name="changed")
    result = import_data(input_path=target, fmt="jsonl", mode="upsert", snapshot=True)
    assert Group.objects.get().name == "before" and "auth_group" in Snapshot.objects.get(id=result.snapshot_id).tables
    snapshot_rollback(snapshot_id=result.snapshot_id)
    assert Group.objects.get().name == "changed"


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ("auth.Grop", "Unknown entity: auth.Grop. Valid entities: roles, users"),
        ("nosuchapp.Model", "Unknown entity: nosuchapp.Model"),
        ("dbops.BackupRecord", "dbops.BackupRecord is operations state of dbops"),
        ("auth.User", "auth.User is swapped out for core.User: name core.User."),  # no table of its own
    ],
)
def test_a_model_that_does_not_exist_or_may_not_move_is_refused(tmp_path, names, says):
    state = fingerprint()
    with pytest.raises(UnknownEntityError, match=says.replace(".", r"\.")):
        export_data(entities=names, output=tmp_path / "x.jsonl", fmt="jsonl")
    message = command_error("export_data", "--entities", names, "--output", str(tmp_path / "x.jsonl"))
    assert says in message
    assert not (tmp_path / "x.jsonl").exists() and fingerprint() == state


def test_an_account_model_never_exports_its_password_hash(tmp_path):
    User.objects.create_user(username="ann", password="s3cret-pass")  # noqa: S106
    target = tmp_path / "u.jsonl"
    export_data(entities="core.User", output=target, fmt="jsonl")
    assert "pbkdf2" not in target.read_text() and '"password"' not in target.read_text()


def _text_of(path) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return "".join(archive.read(name).decode() for name in archive.namelist())
    return path.read_text()


def test_a_models_own_masking_rules_apply_in_every_format(tmp_path, monkeypatch):
    # given a model nobody declared, its rules in the model itself (dbops_anonymize)
    monkeypatch.setattr(Group, "dbops_anonymize", {"name": "hash"}, raising=False)
    ENTITIES.reset()
    try:
        Group.objects.create(name="Monica Brown private group")
        texts = {}
        for fmt, name in [("jsonl", "g.jsonl"), ("json", "g.json"), ("sql", "g.sql"), ("csv", "g.zip")]:
            # when exported anonymized in each format
            export_data(entities="auth.Group", output=tmp_path / name, fmt=fmt, anonymize=True)
            texts[fmt] = _text_of(tmp_path / name)
    finally:
        ENTITIES.reset()
    # then no format keeps the name, and all hold the same hash (the rule --explain prints)
    assert not [fmt for fmt, text in texts.items() if "Monica" in text]
    digests = {fmt: set(re.findall(r"\b[0-9a-f]{32}\b", text)) for fmt, text in texts.items()}
    assert len(digests["jsonl"]) == 1 and all(found == digests["jsonl"] for found in digests.values())
