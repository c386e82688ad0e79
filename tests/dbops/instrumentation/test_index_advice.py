"""Index advice proven by the planner: every candidate costed with a real HypoPG hypothetical index on
the real PostgreSQL, over ANALYZEd tables of tens of thousands of rows."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from dbops.exceptions import AnalyzerError
from dbops.instrumentation.analyzer import analysis_render, query_analyze
from multipult.core.models import AuditLog
from tests.dbops.instrumentation.analyzer_data import AUDIT_ROWS, PLANS_REPEAT_ON_PURPOSE, large_audit_table  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("large_audit_table"), PLANS_REPEAT_ON_PURPOSE]


def by_kind(analysis, kind):
    return [s for s in analysis.suggestions + analysis.rejected if s.kind == kind]


def test_a_column_most_rows_share_is_rejected_with_its_costs():
    # 45% of the rows are 'update': the planner keeps the sequential scan whatever index exists.
    analysis = query_analyze(sql="SELECT id FROM core_auditlog WHERE action = 'update'")

    assert analysis.suggestions == []
    [plain] = by_kind(analysis, "equality")
    assert plain.status == "rejected" and plain.columns == ["action"]
    assert plain.cost_before == analysis.total_cost
    assert "does not choose it" in plain.verdict or "drops only" in plain.verdict
    text = "\n".join(analysis_render(analysis))
    assert f"REJECTED auditlog_action_idx (action; equality): cost {analysis.total_cost:,.2f} -> " in text
    assert "Index advice: none" in text


def test_jsonb_key_lookup_gets_an_expression_index_and_an_ignored_btree_is_reported_with_its_size():
    with connection.cursor() as cursor:  # the harmful advice of old: a btree on the whole jsonb column
        cursor.execute("CREATE INDEX audit_changes_btree ON core_auditlog (changes)")
        cursor.execute("ANALYZE core_auditlog")

    analysis = query_analyze(sql="SELECT id FROM core_auditlog WHERE changes ->> 'reason' = 'abc'")

    [advised] = analysis.suggestions
    assert advised.kind == "expression" and advised.status == "accepted"
    assert advised.create_index_sql == (
        'CREATE INDEX CONCURRENTLY "auditlog_changes_reason_idx" ON "core_auditlog" (("changes" ->> \'reason\'));'
    )
    assert advised.django_index == 'models.Index(KT("changes__reason"), name="auditlog_changes_reason_idx")'
    assert advised.cost_before / advised.cost_after >= 2
    [ignored] = analysis.ignored_indexes
    assert ignored.name == "audit_changes_btree" and ignored.size_bytes > 0
    text = "\n".join(analysis_render(analysis))
    assert "audit_changes_btree on core_auditlog (" in text and "the planner scans the table instead" in text


def test_order_by_limit_answered_by_a_sort_gets_a_sort_index():
    analysis = query_analyze(sql="SELECT id, action FROM core_auditlog ORDER BY timestamp DESC LIMIT 20")

    [advised] = analysis.suggestions
    assert advised.kind == "sort" and advised.columns == ["timestamp DESC"]
    assert advised.django_index == 'models.Index(fields=["-timestamp"], name="auditlog_timestamp_idx")'
    assert advised.cost_after < analysis.total_cost / 100


def test_a_rare_constant_gets_a_partial_index_smaller_than_the_full_one():
    analysis = query_analyze(
        sql="SELECT * FROM core_auditlog WHERE action = 'restore' AND timestamp > now() - interval '30 days'"
    )

    [advised] = analysis.suggestions
    assert advised.kind == "partial" and advised.columns == ["timestamp"]
    assert advised.create_index_sql.endswith('("timestamp") WHERE "action" = \'restore\';')
    assert "condition=models.Q(action='restore')" in advised.django_index
    [full] = [s for s in analysis.rejected if s.columns == ["action", "timestamp"]]
    assert full.estimated_size_bytes > 10 * advised.estimated_size_bytes
    assert f"{advised.name} serves this scan better for its size" in full.verdict


def test_range_column_after_equality_columns():
    analysis = query_analyze(
        sql="SELECT * FROM core_auditlog WHERE entity_id = 7 AND entity_type = 'concept' AND timestamp >= '2020-01-01'",
        large_table_rows=1000,
    )
    # audit_entity_time_idx (entity_type, entity_id, -timestamp) exists: the plan uses it, no advice.
    assert analysis.uses_index("audit_entity_time_idx")
    assert analysis.suggestions == [] and analysis.rejected == []


def test_containment_gets_a_gin_candidate_that_only_a_real_build_can_prove():
    analysis = query_analyze(sql="""SELECT id FROM core_auditlog WHERE changes @> '{"field": "f3"}'""")

    [gin] = by_kind(analysis, "containment")
    assert gin.status == "unproven" and gin in analysis.rejected
    assert gin.create_index_sql.endswith('USING gin ("changes" jsonb_path_ops);')
    assert gin.django_index == (
        'GinIndex(fields=["changes"], opclasses=["jsonb_path_ops"], name="auditlog_changes_gin_idx")'
    )


def test_the_factor_is_a_setting():
    sql = "SELECT id FROM core_auditlog WHERE changes ->> 'reason' = 'abc'"
    factor = query_analyze(sql=sql).suggestions[0].cost_factor

    stricter = query_analyze(sql=sql, min_factor=factor * 1.5)

    assert stricter.suggestions == []
    assert "drops only" in by_kind(stricter, "expression")[0].verdict
    with pytest.raises(AnalyzerError, match="at least 1"):
        query_analyze(sql=sql, min_factor=0.5)


@pytest.fixture
def role_without_hypopg():
    """A role that may read the tables but not create extensions, named per xdist worker: roles belong to
    the whole server, which every worker's test databases share. Created in the test's transaction (its
    rollback undoes it, whatever happens) and dropped at teardown as well, for when nothing rolls back."""
    name = f"dbops_no_hypopg_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    role = connection.ops.quote_name(name)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    yield name
    if connection.needs_rollback:
        return  # a broken transaction runs nothing more: its rollback drops the role
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute(f"DROP OWNED BY {role}")  # its grants, which would keep DROP ROLE from running
        cursor.execute(f"DROP ROLE {role}")


def test_without_hypopg_the_advice_is_marked_unvalidated(role_without_hypopg):
    # The role, in a database where HypoPG is not created.
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS hypopg")
        cursor.execute(f"SET ROLE {connection.ops.quote_name(role_without_hypopg)}")
    try:
        analysis = query_analyze(sql="SELECT id FROM core_auditlog WHERE changes ->> 'reason' = 'abc'")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")

    assert "cannot create it in database" in analysis.hypothetical_unavailable
    assert "CREATE EXTENSION hypopg" in analysis.hypothetical_unavailable
    [advised] = analysis.suggestions
    assert advised.status == "unvalidated" and advised.cost_after is None
    text = "\n".join(analysis_render(analysis))
    assert f"Hypothetical indexes unavailable: HypoPG is installed on the server, but {role_without_hypopg}" in text
    assert "UNVALIDATED auditlog_changes_reason_idx" in text
    assert AuditLog.objects.count() == AUDIT_ROWS


def test_a_statement_that_runs_too_long_is_cancelled_and_changes_nothing():
    sql = "UPDATE core_auditlog SET entity_id = 424242 WHERE pg_sleep(0.5) IS NOT NULL AND id > 0"
    with pytest.raises(AnalyzerError, match=r"ran longer than the 0.2 s limit and was cancelled") as raised:
        query_analyze(sql=sql, analyze=True, timeout=0.2)

    assert raised.value.parameter == "timeout"
    assert not AuditLog.objects.filter(entity_id=424242).exists()


def test_a_syntax_error_is_one_message():
    with pytest.raises(AnalyzerError, match='could not explain the statement: syntax error at or near "FROM"'):
        query_analyze(sql="SELECT id, FROM core_auditlog")


def test_a_parallel_plan_shows_each_process_and_the_total():
    from dbops.instrumentation.plans import plan_rows

    with connection.cursor() as cursor:  # parallel even for a table this small
        for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
            cursor.execute(f"SET {setting} = 0")
        cursor.execute("SET max_parallel_workers_per_gather = 2")
    try:
        analysis = query_analyze(sql="SELECT count(*) FROM core_auditlog WHERE action = 'update'", analyze=True)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ALL")

    [scan] = [row for row in plan_rows(analysis.plan) if row.node.parallel_aware]
    launched = scan.node.processes - 1
    if launched == 0:
        pytest.skip("the server had no parallel worker free")  # max_worker_processes shared with other sessions
    names = [who for who, _ms, _percent in scan.processes]
    assert names[0] == "leader" and len(names) == scan.node.processes
    assert sum(ms for _who, ms, _percent in scan.processes) == pytest.approx(scan.node.processes_ms, rel=0.01)
    assert sum(percent for *_rest, percent in scan.processes) == pytest.approx(100, abs=0.5)


def test_an_index_read_for_most_of_the_table_is_rejected_though_the_planner_costs_it_lower():
    # count(*) over the 45% 'update' rows: an index-only scan is costed below the sequential scan, and measured slower.
    with connection.cursor() as cursor:  # as after a VACUUM (which cannot run in the test's transaction)
        cursor.execute("UPDATE pg_class SET relallvisible = relpages WHERE relname = 'core_auditlog'")
    analysis = query_analyze(sql="SELECT count(*) FROM core_auditlog WHERE action = 'update'")

    assert analysis.suggestions == []
    [plain] = by_kind(analysis, "equality")
    assert plain.status == "rejected"
    assert "% of the table (more than 20%): cheaper only on paper" in plain.verdict, plain.verdict
    assert plain.cost_after < plain.cost_before / 2  # what made the old advice harmful
