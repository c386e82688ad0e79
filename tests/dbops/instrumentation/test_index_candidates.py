"""Candidate indexes read off plan text as PostgreSQL prints it (pure logic, no database)."""

from __future__ import annotations

from dbops.instrumentation.index_candidates import (
    Condition,
    KeyPart,
    ScanShape,
    candidates_for,
    conditions_parse,
    sort_keys_parse,
)

COLUMNS = frozenset({"id", "action", "timestamp", "changes", "entity_id", "actor_id", "ip_address"})


def test_conditions_of_a_verbose_filter():
    conditions = conditions_parse(
        "(((core_auditlog.action)::text = 'it''s'::text) AND (core_auditlog.\"timestamp\" > (now() - "
        "'30 days'::interval)) AND ((core_auditlog.changes ->> 'reason'::text) = $1) AND "
        "(core_auditlog.actor_id IS NULL) AND (core_auditlog.changes @> '{\"a\": 1}'::jsonb) AND "
        "((core_auditlog.entity_id = 3) OR (core_auditlog.entity_id = 4)) AND (core_auditlog.id = other.id))",
        COLUMNS,
    )

    assert conditions == [
        Condition("action", "=", literal="'it''s'"),
        Condition("timestamp", ">"),
        Condition("changes", "=", json_key="reason"),
        Condition("actor_id", "IS NULL"),
        Condition("changes", "@>", literal="'{\"a\": 1}'"),
    ]


def test_sort_keys_only_when_every_key_is_a_column():
    assert sort_keys_parse(['core_auditlog."timestamp" DESC', "core_auditlog.id"], COLUMNS) == [
        KeyPart("timestamp", descending=True),
        KeyPart("id"),
    ]
    assert sort_keys_parse(["(count(*)) DESC"], COLUMNS) == []
    assert sort_keys_parse(["core_auditlog.id NULLS FIRST"], COLUMNS) == []


def test_candidates_of_one_scan():
    shape = ScanShape(
        table="core_auditlog",
        conditions=[Condition("action", "=", literal="'restore'"), Condition("timestamp", ">")],
        sort_keys=[KeyPart("timestamp", descending=True)],
        output=["core_auditlog.id", "core_auditlog.action"],
        few_values=frozenset({"action"}),
    )
    candidates = candidates_for(shape, COLUMNS)
    found = {(c.kind, tuple(c.labels), c.include, tuple(p.column for p in c.predicate)) for c in candidates}

    assert ("equality", ("action", "timestamp"), (), ()) in found
    assert ("sort", ("action", "timestamp DESC"), (), ()) in found
    assert ("partial", ("timestamp",), (), ("action",)) in found
    assert ("covering", ("action", "timestamp"), ("id",), ()) in found
    assert ("covering", ("timestamp",), ("id", "action"), ("action",)) in found


def test_no_partial_index_on_a_column_of_many_values():
    shape = ScanShape("core_auditlog", [Condition("entity_id", "=", literal="7"), Condition("timestamp", ">")])
    assert all(c.kind != "partial" for c in candidates_for(shape, COLUMNS))


def test_create_sql_of_each_kind():
    quote = lambda name: f'"{name}"'  # noqa: E731
    [expression] = candidates_for(ScanShape("t", [Condition("changes", "=", json_key="k")]), COLUMNS)
    assert expression.create_sql(quote, name=None) == 'CREATE INDEX ON "t" (("changes" ->> \'k\'))'
    [gin] = candidates_for(ScanShape("t", [Condition("changes", "@>", literal="'{}'")]), COLUMNS)
    assert gin.create_sql(quote, name="x", concurrently=True) == (
        'CREATE INDEX CONCURRENTLY "x" ON "t" USING gin ("changes" jsonb_path_ops)'
    )
