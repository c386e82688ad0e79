"""Each composite index is used by the hot query it was made for (EXPLAIN on PostgreSQL)."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from multipult.core.models import AuditLog, Concept, Dictionary, DictionaryEntry, StoredFile, User

pytestmark = pytest.mark.django_db

ROWS = 20_000  # enough that the planner prefers an index over a sequential scan


def _plan_index_names(queryset) -> set[str]:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    names: set[str] = set()

    def walk(node):
        if "Index Name" in node:
            names.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return names


@pytest.fixture
def populated():
    now = timezone.now()
    users = User.objects.bulk_create(
        User(
            username=f"user{i}",
            email=f"u{i}@example.com",
            is_active=i % 10 != 0,
            date_joined=now - timedelta(minutes=i),
        )
        for i in range(2_000)
    )
    Dictionary.objects.bulk_create(Dictionary(name=f"dict-{i}") for i in range(ROWS // 4))
    Concept.objects.bulk_create(
        Concept(code=f"C{i}", name=f"concept {i}", created_by=users[i % len(users)]) for i in range(ROWS // 4)
    )
    StoredFile.objects.bulk_create(
        StoredFile(name=f"f{i}", storage_path=f"files/{i}", entity_type="concept", entity_id=i % 5_000)
        for i in range(ROWS)
    )
    AuditLog.objects.bulk_create(
        AuditLog(
            actor=users[i % len(users)],
            action="update",
            entity_type=("concept", "dictionary", "user")[i % 3],
            entity_id=i % 3_000,
            timestamp=now - timedelta(seconds=i),
        )
        for i in range(ROWS)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return users


def test_active_users_by_date_joined_uses_index(populated):
    queryset = User.objects.filter(is_active=True).order_by("-date_joined")[:20]
    assert "user_active_joined_idx" in _plan_index_names(queryset)


def test_audit_history_of_entity_uses_index(populated):
    queryset = AuditLog.objects.filter(entity_type="concept", entity_id=42).order_by("-timestamp")[:50]
    assert "audit_entity_time_idx" in _plan_index_names(queryset)


def test_audit_by_actor_uses_index(populated):
    queryset = AuditLog.objects.filter(actor=populated[7]).order_by("-timestamp")[:50]
    assert "audit_actor_time_idx" in _plan_index_names(queryset)


def test_files_of_entity_uses_index(populated):
    queryset = StoredFile.objects.filter(entity_type="concept", entity_id=17)
    assert "file_entity_idx" in _plan_index_names(queryset)


def test_dictionary_by_name_uses_index(populated):
    queryset = Dictionary.objects.filter(name="dict-123")
    assert "dictionary_name_uniq" in _plan_index_names(queryset)


def test_concepts_by_creator_uses_index(populated):
    queryset = Concept.objects.filter(created_by=populated[3]).order_by("-created_at")[:20]
    assert "concept_creator_created_idx" in _plan_index_names(queryset)


def test_no_domain_index_is_a_redundant_prefix_of_another():
    """A single-column index whose column leads a composite index only costs writes; the composite serves it."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname, ix.indisunique, array_agg(a.attname ORDER BY k.ord)
            FROM pg_index ix
            JOIN pg_class t ON t.oid = ix.indrelid
            JOIN pg_class i ON i.oid = ix.indexrelid
            JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            WHERE t.relname = ANY(%s)
            GROUP BY t.relname, i.relname, ix.indisunique
            """,
            # Our models' tables; Django's auto-created many-to-many tables keep its own index layout.
            [[model._meta.db_table for model in (AuditLog, Concept, Dictionary, DictionaryEntry, StoredFile, User)]],
        )
        indexes = cursor.fetchall()
    redundant = [
        (table, name)
        for table, name, unique, columns in indexes
        if not unique
        and any(
            other_table == table
            and other_name != name
            and len(other_columns) > len(columns)
            and other_columns[: len(columns)] == columns
            for other_table, other_name, _, other_columns in indexes
        )
    ]
    assert redundant == []
