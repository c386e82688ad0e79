"""The entity registry: MultiPULT's eight entities come from its settings exactly as they were hard-coded
before, apps can register more from code, and every wrong declaration is one system-check error with a
stable id (and one readable line from the commands), never a traceback."""

from __future__ import annotations

import copy

import pytest
from django.core.management.base import CommandError

from dbops.checks import check_dbops_settings, check_entities
from dbops.exceptions import ConfigurationError
from dbops.services.datamigration.entities import ENTITIES, entity_for_model, entity_register, resolve_entities
from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User
from tests.commands import command_error, run_command


def test_multipults_entities_are_the_eight_it_always_had():
    described = [(e.name, e.model, e.since_field, e.companions, e.parent, e.never_exported) for e in ENTITIES.values()]
    assert described == [
        ("roles", Role, "created_at", (), None, frozenset()),
        ("users", User, "date_joined", ("roles", "user_roles"), None, frozenset({"password"})),
        ("user_roles", User.roles.through, None, (), ("user", "users"), frozenset()),
        ("concepts", Concept, "updated_at", (), None, frozenset()),
        ("dictionaries", Dictionary, "created_at", ("dictionary_entries",), None, frozenset()),
        ("dictionary_entries", DictionaryEntry, None, (), ("dictionary", "dictionaries"), frozenset()),
        ("stored_files", StoredFile, "created_at", (), None, frozenset()),
        ("audit_logs", AuditLog, "timestamp", (), None, frozenset()),
    ]
    users = ENTITIES["users"]
    assert "password" not in users.field_names and "email" in users.field_names
    assert users.import_defaults["password"]().startswith("!")  # an unusable password, as before
    assert ENTITIES.by_table("core_user") is users and entity_for_model(User) is users
    assert check_entities(None) == []


def _declarations(settings) -> list[dict]:
    return copy.deepcopy(settings.DBOPS["ENTITIES"])


def _with(settings, declarations) -> list[tuple[str, str]]:
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": declarations}
    return [(error.id, error.msg) for error in check_entities(None)]


@pytest.mark.parametrize(
    ("change", "check_id", "says"),
    [
        (lambda d: d.append("core.Role"), "dbops.E101", "entity #9 is str"),
        (lambda d: d[0].update(sice_field="created_at"), "dbops.E101", "unknown option(s) sice_field"),
        (lambda d: d[0].update(model="Role"), "dbops.E101", "'app_label.ModelName'"),
        (lambda d: d[3].update(model="core.Concepts"), "dbops.E102", "'core.Concepts' is not an installed model"),
        (lambda d: d.append({"name": "roles", "model": "auth.Group"}), "dbops.E103", "name 'roles' is declared twice"),
        (lambda d: d.append({"name": "again", "model": "core.Role"}), "dbops.E103", "model core.Role"),
        (lambda d: d[0].update(since_field="made_at"), "dbops.E104", "'since_field' names no field of core.Role"),
        (lambda d: d[1]["anonymize"].update(nickname="first_name"), "dbops.E104", "'anonymize' names no field"),
        (lambda d: d[2].update(parent=["role", "users"]), "dbops.E104", "parent field 'role' is not a foreign key"),
        (lambda d: d[4].update(companions=["entries"]), "dbops.E105", "unknown entities: entries"),
        (lambda d: d.insert(0, d.pop(5)), "dbops.E106", "'dictionary_entries' is declared before 'dictionaries'"),
        (lambda d: d[1]["anonymize"].update(email="scramble"), "dbops.E107", "unknown rule 'scramble'"),
        (lambda d: d[1]["anonymize"].update(email="generalize:month"), "dbops.E107", "does not fit 'email'"),
        (lambda d: d[3].update(exclude=["code"]), "dbops.E108", "excluded field 'code' is required"),
    ],
)
def test_a_wrong_declaration_is_one_error_with_a_stable_id(settings, change, check_id, says):
    declarations = _declarations(settings)
    change(declarations)

    problems = _with(settings, declarations)

    assert len(problems) == 1, problems
    ((found_id, message),) = problems
    assert found_id == check_id and says in message


@pytest.mark.django_db  # every dbops command first checks for leftovers of interrupted restores
def test_using_a_wrong_declaration_is_one_readable_line(settings, tmp_path):
    declarations = _declarations(settings)
    declarations[3]["model"] = "core.Concepts"
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": declarations}

    with pytest.raises(ConfigurationError, match="'core.Concepts' is not an installed model"):
        resolve_entities("concepts")
    command_error(
        "export_data", "--output", str(tmp_path / "x.jsonl"), match="'core.Concepts' is not an installed model"
    )
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.django_db  # every dbops command first checks for leftovers of interrupted restores
def test_no_entities_declared_is_refused_with_the_setting_to_fill(settings, tmp_path):
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": []}
    with pytest.raises(
        CommandError, match=r"No data-migration entities are declared: list them in DBOPS\['ENTITIES'\]"
    ):
        run_command("export_data", "--output", str(tmp_path / "x.jsonl"))


def test_an_app_can_register_an_entity_from_code(settings):
    settings.DBOPS = {**settings.DBOPS, "ENTITIES": _declarations(settings)[:1]}  # roles only
    entity_register(name="groups", model="auth.Group", anonymize={"name": "keep"})
    try:
        assert list(ENTITIES) == ["roles", "groups"]
        assert {k: str(v) for k, v in ENTITIES["groups"].anonymize.items()} == {"name": "keep"} and check_entities(
            None
        ) == []
    finally:
        ENTITIES._registered.clear()
        ENTITIES.reset()
    assert list(ENTITIES) == ["roles"]


def test_the_dbops_settings_are_checked_themselves(settings):
    settings.DBOPS = {**settings.DBOPS, "ENTITES": [], "CELERY_APP": "multipult.celery.no_such_app"}
    problems = {error.id: error.msg for error in check_dbops_settings(None)}
    assert "ENTITES" in problems["dbops.E100"]
    assert "'multipult.celery.no_such_app' cannot be imported" in problems["dbops.E109"]
    settings.DBOPS = "not a dict"
    assert [error.id for error in check_dbops_settings(None)] == ["dbops.E100"]


def test_a_field_import_data_cannot_read_is_reported_at_start_up(settings):
    # django-celery-beat's CrontabSchedule has a timezone field, a type import_data has no converter for.
    declarations = [{"name": "crontabs", "model": "django_celery_beat.CrontabSchedule"}]
    problems = _with(settings, declarations)
    assert [check_id for check_id, _ in problems] == ["dbops.E111"]
    assert "'crontabs' has fields import_data cannot read: timezone (" in problems[0][1]
