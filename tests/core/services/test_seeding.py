"""seed_create / seed_plan against the real PostgreSQL test database."""

from __future__ import annotations

import pytest
from django.db import connection

from dbops.engines import get_connector
from dbops.exceptions import SeedError
from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, Role, StoredFile, User
from multipult.core.services.seeding import ROLES, seed_create, seed_plan

COUNTED = {
    "users": User,
    "user_roles": User.roles.through,
    "concepts": Concept,
    "dictionaries": Dictionary,
    "dictionary_entries": DictionaryEntry,
    "stored_files": StoredFile,
    "audit_logs": AuditLog,
}


def _snapshot() -> dict[str, list[tuple]]:
    """Every seeded row, with role ids replaced by names (role ids come from a sequence)."""
    role_names = dict(Role.objects.values_list("id", "name"))
    user_roles = sorted(
        (row[0], row[1], role_names[row[2]])
        for row in User.roles.through.objects.values_list("id", "user_id", "role_id")
    )
    snapshot = {"user_roles": user_roles, "roles": sorted(Role.objects.values_list("name", "description"))}
    for label, model in COUNTED.items():
        if label != "user_roles":
            fields = [field.attname for field in model._meta.concrete_fields]
            snapshot[label] = list(model.objects.order_by("id").values_list(*fields))
    return snapshot


def _index_and_key_definitions() -> list[tuple[str, str]]:
    """Every index and foreign key of the seeded tables, as PostgreSQL would re-create them."""
    tables = [model._meta.db_table for model in COUNTED.values()]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY(%s::regclass[]) "
            "UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY 1",
            [tables, tables],
        )
        return cursor.fetchall()


def _empty_domain_tables() -> None:
    for model in (AuditLog, StoredFile, DictionaryEntry, Dictionary, Concept, User.roles.through, User, Role):
        model.objects.all().delete()


@pytest.mark.parametrize(("scale", "low", "high"), [(1, 950, 1_050), (10, 9_500, 10_500), (1000, 950_000, 1_050_000)])
def test_plan_total_is_about_a_thousand_rows_per_scale_unit(scale, low, high):
    plan = seed_plan(scale=scale)
    assert low <= plan.total <= high
    # Audit logs and dictionary entries are the bulk, as in real data.
    assert plan.counts["audit_logs"] + plan.counts["dictionary_entries"] > plan.total / 2
    assert all(count >= 1 for count in plan.counts.values())


@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf"), 1e9])
def test_plan_rejects_unusable_scales(scale):
    with pytest.raises(SeedError, match="^The scale ") as refused:
        seed_plan(scale=scale)
    assert refused.value.parameter == "scale" and "--" not in str(refused.value)  # the command adds its flag


@pytest.mark.django_db
def test_seed_creates_exactly_the_planned_rows_with_the_copy_writer():
    result = seed_create(scale=2, seed=5)

    assert result.method == "copy"
    assert result.created["roles"] == len(ROLES)
    for label, model in COUNTED.items():
        assert model.objects.count() == result.plan.counts[label] == result.created[label], label
    assert Role.objects.count() == len(ROLES)
    # Foreign keys point at seeded rows and every user has one or two roles.
    user_ids = set(User.objects.values_list("id", flat=True))
    assert set(AuditLog.objects.exclude(actor=None).values_list("actor_id", flat=True)) <= user_ids
    assert not User.objects.filter(roles__isnull=True).exists()
    assert DictionaryEntry.objects.values("dictionary").distinct().count() == Dictionary.objects.count()


@pytest.mark.django_db
def test_same_seed_gives_the_same_data_and_another_seed_does_not():
    seed_create(scale=0.5, seed=42)
    first = _snapshot()
    _empty_domain_tables()

    seed_create(scale=0.5, seed=42)
    assert _snapshot() == first

    _empty_domain_tables()
    seed_create(scale=0.5, seed=43)
    other = _snapshot()
    assert other["users"] != first["users"]
    assert other["audit_logs"] != first["audit_logs"]


@pytest.mark.django_db
def test_seeding_twice_appends_and_sequences_continue_after_the_seeded_ids():
    seed_create(scale=0.2, seed=1)
    users_before = User.objects.count()
    second = seed_create(scale=0.2, seed=1)

    assert second.created["roles"] == 0  # roles exist already
    assert User.objects.count() == 2 * users_before
    # The ORM's own inserts get ids after the seeded ones (sequences were reset).
    new_concept = Concept.objects.create(code="after-seed", name="after")
    assert new_concept.id > Concept.objects.exclude(id=new_concept.id).order_by("-id").first().id


@pytest.mark.django_db
def test_seeded_users_cannot_log_in_and_values_fit_their_columns():
    seed_create(scale=0.3, seed=3)
    assert not any(user.has_usable_password() for user in User.objects.all())
    assert len(set(User.objects.values_list("email", flat=True))) == User.objects.count()
    log = AuditLog.objects.exclude(action=AuditLog.Action.LOGIN).order_by("id").first()
    assert isinstance(log.changes, dict) and log.changes  # valid JSON, not a string
    assert log.timestamp.year in (2024, 2025)


@pytest.mark.django_db
def test_a_failure_half_way_leaves_nothing_behind(monkeypatch):
    from multipult.core.services import seeding

    def failing_audit_rows(ctx):
        yield from ()
        raise RuntimeError("disk full")

    monkeypatch.setattr(seeding, "_audit_rows", failing_audit_rows)
    definitions = _index_and_key_definitions()
    with pytest.raises(RuntimeError):
        seed_create(scale=0.2, seed=1)
    assert User.objects.count() == 0 and Role.objects.count() == 0
    assert _index_and_key_definitions() == definitions  # dropped indexes and keys came back too


@pytest.mark.django_db
def test_copy_round_trips_awkward_text(monkeypatch):
    """Tabs, newlines and backslashes in pool values arrive unchanged through COPY."""
    from multipult.core.services import seeding

    original = seeding._Pools.__init__

    def awkward_pools(self, seed):
        original(self, seed)
        self.titles = ["tab\there", "new\nline", "back\\slash", "quote'\"", "ünïcødé"]

    monkeypatch.setattr(seeding._Pools, "__init__", awkward_pools)
    seed_create(scale=0.2, seed=9)
    assert set(Concept.objects.values_list("name", flat=True)) <= {
        "tab\there",
        "new\nline",
        "back\\slash",
        "quote'\"",
        "ünïcødé",
    }
    assert connection.vendor == "postgresql"


@pytest.mark.django_db
def test_indexes_and_foreign_keys_are_rebuilt_identically_and_tables_analyzed():
    definitions = _index_and_key_definitions()
    assert any("audit_entity_time_idx" in name for name, _ in definitions)
    assert any("FOREIGN KEY" in definition for _, definition in definitions)

    seed_create(scale=0.5, seed=4)

    assert _index_and_key_definitions() == definitions
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'core_auditlog'::regclass")
        assert cursor.fetchone()[0] == AuditLog.objects.count()  # ANALYZE ran after the load


@pytest.mark.django_db
def test_only_tables_with_more_new_rows_than_old_are_rebuilt():
    from multipult.core.services.seeding import _CopyWriter

    seed_create(scale=0.5, seed=4)
    existing = AuditLog.objects.count()
    writer = _CopyWriter(get_connector())
    assert writer.tables_worth_rebuilding({AuditLog: existing, Concept: Concept.objects.count() + 1}) == [
        "core_concept"
    ]
    assert writer.tables_worth_rebuilding({AuditLog: existing + 1}) == ["core_auditlog"]
