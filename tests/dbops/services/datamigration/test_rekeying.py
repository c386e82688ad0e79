"""`import_data --mode upsert --match natural|field:NAME`: a file from another environment updates the
rows it means (by key, not by id), creates the others with fresh ids, re-points its foreign keys, and
never overwrites a row that merely shares an id with a record."""

from __future__ import annotations

import pytest

from dbops.exceptions import DataMigrationError, ImportValidationError
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from multipult.core.models import AuditLog, Concept, Role, User
from tests.commands import command_error, run_command
from tests.dbops.services.datamigration.helpers import fingerprint, jsonl_write, user_record, wipe_domain

pytestmark = pytest.mark.django_db


def _memberships() -> set[tuple[str, str]]:
    return set(User.roles.through.objects.values_list("user__username", "role__name"))


@pytest.mark.parametrize("fmt", ["jsonl", "sql"])
def test_a_file_from_another_environment_updates_by_natural_key_and_keeps_unrelated_rows(tmp_path, fmt):
    # given, in the source environment, two users with roles
    admin, viewer = Role.objects.create(name="admin"), Role.objects.create(name="viewer")
    ann = User.objects.create(username="ann", email="ann@new.example", first_name="Ann")
    bob = User.objects.create(username="bob", email="bob@new.example", first_name="Bob")
    ann.roles.add(admin)
    bob.roles.add(viewer)
    target = tmp_path / f"env.{fmt}"
    export_data(entities="roles,users,user_roles", output=target, fmt=fmt)
    # and a target environment where the same people have other ids, and another user holds ann's id
    wipe_domain()
    Role.objects.create(name="viewer", id=500)
    User.objects.create(username="bob", email="bob@old.example", first_name="Robert", id=700)
    carol = User.objects.create(username="carol", email="carol@example.org", id=ann.pk)
    # when the file is upserted by natural key
    result = run_command(
        "import_data", "--input", str(target), "--format", fmt, "--mode", "upsert", "--match", "natural",
        "--allow-privileged",
    )  # fmt: skip
    # then bob (700) is updated, ann is created with a fresh id, carol is untouched
    assert "users" in result
    assert User.objects.get(pk=700).email == "bob@new.example" and User.objects.get(pk=700).first_name == "Bob"
    assert User.objects.get(pk=carol.pk).username == "carol" and User.objects.get(pk=carol.pk).email == carol.email
    new_ann = User.objects.get(username="ann")
    assert new_ann.pk > max(700, carol.pk) and new_ann.email == "ann@new.example"  # past every id held here
    # roles matched by name (viewer keeps id 500), memberships point at the right people and roles
    assert Role.objects.get(name="viewer").pk == 500 and Role.objects.filter(name="admin").exists()
    assert _memberships() == {("ann", "admin"), ("bob", "viewer")}


def test_match_by_a_named_field(tmp_path):
    Concept.objects.create(code="C1", name="Heart", description="new")
    target = tmp_path / "c.jsonl"
    export_data(entities="concepts", output=target, fmt="jsonl")
    wipe_domain()
    Concept.objects.create(code="C1", name="Heart", description="old", id=999)
    import_data(input_path=target, fmt="jsonl", mode="upsert", match="field:code")
    assert list(Concept.objects.values_list("id", "description")) == [(999, "new")]


def test_a_key_that_matches_two_rows_is_refused_and_changes_nothing(tmp_path):
    Concept.objects.create(code="C1", name="Heart")
    target = tmp_path / "c.jsonl"
    export_data(entities="concepts", output=target, fmt="jsonl")
    wipe_domain()
    Concept.objects.create(code="X1", name="Heart")
    Concept.objects.create(code="X2", name="Heart")
    state = fingerprint()
    with pytest.raises(ImportValidationError, match="concepts record 1, field 'name': matches 2 existing rows by name"):
        import_data(input_path=target, fmt="jsonl", mode="upsert", match="field:name")
    assert fingerprint() == state


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--mode", "upsert", "--match", "shoe"], "--match: Unknown match 'shoe'; use id, natural or field:NAME."),
        (["--mode", "upsert", "--match", "field:colour"], "--match: No entity of the file has a field 'colour'"),
        (["--match", "natural"], "--match: Matching rows by natural only applies to upserts."),
    ],
)
def test_a_wrong_match_is_one_line_and_changes_nothing(tmp_path, options, says):
    Concept.objects.create(code="C1", name="Heart")
    target = tmp_path / "c.jsonl"
    export_data(entities="concepts", output=target, fmt="jsonl")
    state = fingerprint()
    message = command_error("import_data", "--input", str(target), "--format", "jsonl", *options)
    assert says in message and fingerprint() == state


def test_a_declared_natural_key_is_used_and_checked(settings):
    from copy import deepcopy

    from dbops.checks import check_entities

    declarations = deepcopy(settings.DBOPS["ENTITIES"])
    declarations[3]["natural_key"] = ["colour"]
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": declarations}
    (problem,) = check_entities(None)
    assert problem.id == "dbops.E104" and "'natural_key' names no field of core.Concept: colour" in problem.msg
    with pytest.raises(DataMigrationError):
        import_data(input_path="/nonexistent", fmt="jsonl", mode="upsert", match="natural")


def _log_entry_of(user: User) -> None:
    from django.contrib.admin.models import ADDITION, LogEntry
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(Concept)
    LogEntry.objects.create(user=user, content_type=content_type, object_id="1", object_repr="x", action_flag=ADDITION)


@pytest.mark.parametrize(
    ("entities", "says"),
    [
        (
            "auth.Group,auth.Group_permissions,users,admin.LogEntry",
            "--match: Foreign keys point at ids of the other database, which this file does not carry: "
            "auth.Group_permissions.permission (auth.Permission), admin.LogEntry.content_type "
            "(contenttypes.ContentType): export auth.Permission, contenttypes.ContentType with it, or match by id.",
        ),
        (  # a foreign key inside the natural key (content_type, codename) is as untrustworthy
            "auth.Permission,auth.Group,auth.Group_permissions",
            "--match: auth.Permission.content_type points at contenttypes.ContentType ids of the other database, "
            "which this file does not carry: export contenttypes.ContentType with it, or match by id.",
        ),
    ],
)
def test_a_foreign_key_to_an_entity_the_file_does_not_carry_is_refused_and_changes_nothing(tmp_path, entities, says):
    # given a file whose rows point at permissions and content types by the ids of its own environment
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="editors")
    group.permissions.add(Permission.objects.get(codename="change_concept"))
    _log_entry_of(User.objects.create(username="ann"))
    target = tmp_path / "auth.jsonl"
    export_data(entities=entities, output=target, fmt="jsonl")
    state = fingerprint()
    # when it is matched by natural key, then it is refused: those ids mean other rows here
    message = command_error(
        "import_data", "--input", str(target), "--format", "jsonl", "--mode", "upsert", "--match", "natural",
        "--allow-privileged",
    )  # fmt: skip
    assert message == says and fingerprint() == state


def test_a_foreign_key_to_a_row_the_file_does_not_carry_is_refused_and_changes_nothing(tmp_path):
    # given a membership of a role the file does not carry, whose id is another role's here
    Role.objects.create(name="viewer", id=2)
    records = [
        ("roles", {"id": 1, "name": "admin", "description": "", "created_at": "2025-01-01T00:00:00+00:00"}),
        ("users", user_record(id=10, username="ann")),
        ("user_roles", {"id": 1, "user": 10, "role": 2}),
    ]
    target = jsonl_write(tmp_path / "roles.jsonl", records)
    state = fingerprint()
    with pytest.raises(ImportValidationError) as caught:
        import_data(input_path=target, fmt="jsonl", mode="upsert", match="natural", allow_privileged=True)
    assert [str(problem) for problem in caught.value.problems] == [
        "user_roles record 1, field 'role': points at roles id 2 of the other database, which this file does not carry"
    ]
    assert fingerprint() == state


def test_records_without_a_natural_key_are_added_with_fresh_ids_and_never_overwrite(tmp_path):
    # given, in the source environment, ann and her audit log
    ann = User.objects.create(username="ann")
    log = AuditLog.objects.create(actor=ann, action="login", entity_type="user", timestamp="2025-01-01T00:00Z")
    target = tmp_path / "logs.jsonl"
    export_data(entities="users,audit_logs", output=target, fmt="jsonl")
    # and a target where carol holds ann's id and an unrelated log holds the log's id
    wipe_domain()
    carol = User.objects.create(username="carol", id=ann.pk)
    AuditLog.objects.create(
        actor=carol, action="export", entity_type="concept", timestamp="2024-01-01T00:00Z", id=log.pk
    )
    # when the file is upserted by natural key
    result = import_data(input_path=target, fmt="jsonl", mode="upsert", match="natural")
    # then carol's log is untouched and ann's is a new row, pointing at the new ann
    assert AuditLog.objects.get(pk=log.pk).actor == carol and AuditLog.objects.get(pk=log.pk).action == "export"
    new_log = AuditLog.objects.get(action="login")
    assert new_log.pk > log.pk and new_log.actor == User.objects.get(username="ann")
    assert "audit_logs: no natural key to match existing rows by; its 1 record(s) are added as new rows " in (
        "\n".join(result.warnings)
    )


def test_two_records_that_match_the_same_row_are_refused_and_change_nothing(tmp_path):
    # given a file of two concepts named like one concept of the target
    records = [
        ("concepts", {"id": 5001, "code": "C1", "name": "Heart", "description": ""}),
        ("concepts", {"id": 5002, "code": "C2", "name": "Heart", "description": ""}),
    ]
    target = jsonl_write(tmp_path / "c.jsonl", records)
    existing = Concept.objects.create(code="X1", name="Heart")
    state = fingerprint()
    # when it is matched by name, then both records are named with the row they both match, and nothing else
    with pytest.raises(ImportValidationError) as caught:
        import_data(input_path=target, fmt="jsonl", mode="upsert", match="field:name")
    assert [str(problem) for problem in caught.value.problems] == [
        f"concepts records 1 and 2 both match existing row id {existing.pk} by name"
    ]
    assert fingerprint() == state


def test_permissions_follow_their_content_types_when_the_file_carries_them(tmp_path):
    # given a group's permission, exported with the permissions and content types it points at
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    Group.objects.create(name="editors").permissions.add(Permission.objects.get(codename="change_concept"))
    target = tmp_path / "auth.jsonl"
    entities = "contenttypes.ContentType,auth.Permission,auth.Group,auth.Group_permissions"
    export_data(entities=entities, output=target, fmt="jsonl")
    # and a target where content types and permissions are numbered otherwise
    Group.objects.all().delete()
    permissions = Permission.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        cursor.execute("UPDATE django_content_type SET id = id + 1000")
        cursor.execute("UPDATE auth_permission SET id = id + 1000, content_type_id = content_type_id + 1000")
    ContentType.objects.clear_cache()
    try:
        # when the file is upserted by natural key
        import_data(input_path=target, fmt="jsonl", mode="upsert", match="natural", allow_privileged=True)
    finally:
        ContentType.objects.clear_cache()
    # then the group holds the same permission, and no permission was made up
    assert list(Group.objects.get(name="editors").permissions.values_list("codename", flat=True)) == ["change_concept"]
    assert Permission.objects.count() == permissions
