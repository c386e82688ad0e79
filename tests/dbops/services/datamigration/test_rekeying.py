"""`import_data --mode upsert --match natural|field:NAME`: a file from another environment updates the
rows it means (by key, not by id), creates the others with fresh ids, re-points its foreign keys, and
never overwrites a row that merely shares an id with a record."""

from __future__ import annotations

import pytest

from dbops.exceptions import DataMigrationError, ImportValidationError
from dbops.services.datamigration.exports import export_data
from dbops.services.datamigration.imports import import_data
from multipult.core.models import Concept, Role, User
from tests.commands import command_error, run_command
from tests.dbops.services.datamigration.helpers import fingerprint, wipe_domain

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
