"""The query profiler on real PostgreSQL: timing, sqlcommenter tags as the server sees them, N+1 and
slow-query detection, SlowQuery persistence outside the profiled transaction, task/command hooks."""

from __future__ import annotations

import logging
import sys

import pytest
from django.db import connection, connections, router, transaction

from dbops.instrumentation.profiling import (
    mask_sql,
    normalize_sql,
    profiled,
    query_profile,
    slow_queries_top,
    sqlcomment,
)
from dbops.models import SlowQuery
from multipult.core.models import User
from multipult.core.services.seeding import seed_create
from multipult.graphql.schema import execute_query

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget_slow_queries():
    # Slow queries recorded inside a test's transaction are committed through their own connection
    # (by design), so the test transaction's rollback does not remove them: delete them the same way.
    yield
    own = connections.create_connection(router.db_for_write(SlowQuery))
    try:
        with own.cursor() as cursor:
            cursor.execute(f"DELETE FROM {SlowQuery._meta.db_table}")  # noqa: S608 (a model's table name)
    finally:
        own.close()


def messages(caplog, level=logging.WARNING):
    return [
        record.getMessage() for record in caplog.records if record.name == "dbops.profiling" and record.levelno == level
    ]


def test_normalization_masks_literals_and_collapses_in_lists():
    first = normalize_sql("SELECT * FROM t WHERE id IN (%s, %s, %s) AND name = 'bob' AND n > 42")
    second = normalize_sql("SELECT *  FROM t WHERE id IN (%s, %s) AND name = 'alice' AND n > 7")
    third = normalize_sql("SELECT * FROM t WHERE id in (%s) AND name = 'x' AND n > 1")
    assert first[0] == second[0] == third[0]
    assert first[1] == "SELECT * FROM t WHERE id IN (...) AND name = ? AND n > ?"
    assert mask_sql("UPDATE u SET password = 'pbkdf2$secret' WHERE id = 5") == "UPDATE u SET password = ? WHERE id = ?"
    # identifiers with digits are not literals
    assert normalize_sql('SELECT "col1" FROM t2')[1] == 'SELECT "col1" FROM t2'


def test_sqlcomment_follows_sqlcommenter():
    assert sqlcomment({"route": "/graphql", "code_location": "app/x.py:f:3"}) == (
        " /*code_location='app%2Fx.py%3Af%3A3',route='%2Fgraphql'*/"
    )


def test_profile_times_every_statement_and_names_the_calling_code(caplog):
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    with query_profile("unit") as profile:
        list(User.objects.all())
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    assert len(profile.records) == 2
    assert all(duration >= 0 for _, duration, _, _ in profile.records)
    sites = [site for _, _, site, _ in profile.records]
    assert sites[0].startswith("tests/dbops/instrumentation/test_profiling.py:test_profile_times_every_statement")
    summary = profile.summary.as_dict()
    assert summary["queries"] == 2 and summary["source"] == "unit" and summary["duplicates"] == 0
    summary_records = [r for r in caplog.records if getattr(r, "query_summary", None)]
    assert len(summary_records) == 1 and summary_records[0].query_summary["queries"] == 2


def _first_user_name():
    return User.objects.filter(pk=1).values_list("username", flat=True).first()


def _first_user_name_deeper():
    return _first_user_name()


@pytest.mark.n_plus_one_allow("tests/dbops/instrumentation/test_profiling.py:*")  # repeats on purpose
def test_a_repeated_statement_is_attributed_to_each_of_its_call_sites():
    # The profiler jumps to the depth where a statement text was last issued: another caller of the
    # same text, at that depth or nearer, must still be named.
    with query_profile("unit") as profile:
        for _ in range(3):
            _first_user_name()
        User.objects.filter(pk=1).values_list("username", flat=True).first()
        _first_user_name_deeper()
        _first_user_name()
    sites = [site.rsplit(":", 1)[0] for _, _, site, _ in profile.records]
    here = "tests/dbops/instrumentation/test_profiling.py:"
    assert sites == [
        *[f"{here}_first_user_name"] * 3,
        f"{here}test_a_repeated_statement_is_attributed_to_each_of_its_call_sites",
        f"{here}_first_user_name",
        f"{here}_first_user_name",
    ]
    assert len({sql for sql, _, _, _ in profile.records}) == 1  # one statement text throughout


@pytest.mark.n_plus_one_allow("tests/dbops/instrumentation/test_profiling.py:*")  # repeats on purpose
def test_one_statement_from_two_lines_of_one_function_names_each_line():
    # The hint of a text's last call site is checked by that frame's code and instruction: another line
    # of the same function is another call site, and its comment names that line.
    with query_profile("unit") as profile:
        for _ in range(3):
            first = sys._getframe().f_lineno + 1
            User.objects.filter(pk=1).values_list("username", flat=True).first()
            User.objects.filter(pk=1).values_list("username", flat=True).first()
    lines = [int(site.rsplit(":", 1)[1]) for _, _, site, _ in profile.records]
    assert lines == [first, first + 1] * 3
    assert profile._comments(profile.records[1][2])[1].endswith(f"%3A{first + 1}',route='unit'*/")


def test_the_profile_unwraps_every_connection_even_when_the_block_fails():
    before = {alias: list(connections[alias].execute_wrappers) for alias in connections}
    with pytest.raises(ZeroDivisionError), query_profile("outer") as outer, query_profile("inner") as inner:
        for alias in connections:
            assert connections[alias].execute_wrappers[-2:] == [outer, inner]
        list(User.objects.all()[:1])
        1 / 0  # noqa: B018 (the block fails)
    assert {alias: list(connections[alias].execute_wrappers) for alias in connections} == before
    list(User.objects.all()[:1])  # after the profiles: recorded by neither
    assert len(outer.records) == 1 and len(inner.records) == 1
    assert outer.summary.count == 1 and inner.summary.count == 1


def test_postgres_receives_the_sqlcommenter_tags():
    # pg_stat_activity shows the statement as the server received it: the comment is on the wire.
    with query_profile("/reports", tags={"graphql_operation": "Report"}):
        with connection.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            without_params = cursor.fetchone()[0]
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND %s = %s", [1, 1])
            with_params = cursor.fetchone()[0]
        # a parameter containing % must not be confused with the comment's URL-encoding
        assert User.objects.filter(username__contains="%x%").count() == 0
    for text in (without_params, with_params):
        assert "graphql_operation='Report'" in text
        assert "route='%2Freports'" in text
        location = "tests%2Fdbops%2Finstrumentation%2Ftest_profiling.py%3Atest_postgres_receives_the_sqlcommenter_tags"
        assert f"code_location='{location}" in text


def test_no_profile_no_tags():
    with connection.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        assert "/*" not in cursor.fetchone()[0]


@pytest.mark.n_plus_one_allow("tests/dbops/instrumentation/test_profiling.py:*")  # the N+1 it reports
def test_n_plus_one_is_reported_with_statement_and_caller(caplog, settings):
    settings.N_PLUS_ONE_THRESHOLD = 5
    seed_create(scale=0.5, seed=1)
    ids = list(User.objects.values_list("id", flat=True)[:6])
    with query_profile("loop") as profile:
        for user_id in ids:
            User.objects.get(pk=user_id)
    warnings = messages(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "N+1 queries: 6 x the same statement at tests/dbops/instrumentation/test_profiling.py:test_n_plus_one"
    )
    assert 'FROM "core_user" WHERE "core_user"."id" = %s' in warnings[0]
    assert profile.summary.duplicates == 5


def test_below_the_threshold_is_not_n_plus_one(caplog, settings):
    settings.N_PLUS_ONE_THRESHOLD = 5
    with query_profile("loop"):
        for user_id in range(4):
            User.objects.filter(pk=user_id).first()
    assert messages(caplog) == []


@pytest.mark.n_plus_one_allow("multipult/graphql/dataloaders.py:*")  # the N+1 it reports
def test_graphql_n_plus_one_names_the_field_path(caplog, settings):
    settings.N_PLUS_ONE_THRESHOLD = 5
    seed_create(scale=0.5, seed=2)
    staff = User.objects.create_user("profiling-staff", is_staff=True, is_superuser=True)  # lists of users are staff's
    with query_profile("graphql"):
        execute_query("{ users(limit: 8) { username files { name } } }", batch=False, user=staff)  # the naive way
    warnings = [message for message in messages(caplog) if "core_storedfile" in message]
    assert len(warnings) == 1
    assert "8 x the same statement at multipult/graphql/dataloaders.py:" in warnings[0]
    assert "(GraphQL field users.files (dataloader:filesByUploaderId))" in warnings[0]

    caplog.clear()
    with query_profile("graphql"):
        execute_query("{ users(limit: 8) { username files { name } } }", user=staff)  # batched: no warning
    assert messages(caplog) == []


def test_slow_statements_are_logged_masked_and_persisted_in_bulk(caplog, settings):
    with query_profile("report", slow_threshold_ms=30) as profile, connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute("SELECT pg_sleep(0.04), 'card-4111' AS secret")
        cursor.execute("SELECT 1")
    assert len(profile.summary.slow) == 1
    warning = messages(caplog)[0]
    assert warning.startswith("slow query: ") and "x2 at tests/dbops/instrumentation/test_profiling.py:" in warning
    assert "card-4111" not in warning and "pg_sleep(?), ? AS secret" in warning

    slow = SlowQuery.objects.get()
    assert slow.count == 2 and slow.max_ms >= 40 and slow.total_ms >= 80
    assert "card-4111" not in slow.sample_sql and slow.source == "report"
    assert slow.call_site.startswith("tests/dbops/instrumentation/test_profiling.py:test_slow_statements")

    # a second profile accumulates into the same row
    with query_profile("report again", slow_threshold_ms=30), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.035), 'other' AS secret")
    slow.refresh_from_db()
    assert slow.count == 3 and slow.source == "report again" and slow.last_ms >= 35
    assert slow_queries_top(limit=5) == [slow]


@pytest.mark.django_db(transaction=True)
def test_slow_queries_survive_a_rollback_of_the_profiled_transaction():
    # Given a profiled block inside a transaction that is rolled back
    with pytest.raises(RuntimeError), transaction.atomic():
        with query_profile("task", slow_threshold_ms=20):
            User.objects.create(username="rolled-back")
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.03)")
        raise RuntimeError("task failed")
    # Then the user is gone but the slow query was recorded through its own connection
    assert not User.objects.filter(username="rolled-back").exists()
    assert [slow.statement for slow in slow_queries_top()] == ["SELECT pg_sleep(?)"]


def test_slow_queries_top_orders_by_total_cost():
    from django.utils import timezone

    now = timezone.now()
    for index, total in enumerate([5.0, 50.0, 20.0]):
        SlowQuery.objects.create(
            fingerprint=f"f{index}", statement=f"s{index}", sample_sql="", count=1, total_ms=total, max_ms=total,
            last_ms=total, first_seen=now, last_seen=now,
        )  # fmt: skip
    assert [slow.total_ms for slow in slow_queries_top(limit=2)] == [50.0, 20.0]


def test_log_all_queries(caplog):
    caplog.set_level(logging.INFO, logger="dbops.profiling")
    with query_profile("all", log_all=True):
        User.objects.filter(username="x").exists()
        User.objects.count()
    logged = [m for m in messages(caplog, logging.INFO) if m.startswith("query ") and "summary" not in m]
    assert len(logged) == 2 and 'FROM "core_user"' in logged[1]


def test_profiled_decorator_follows_the_setting(settings, caplog):
    caplog.set_level(logging.INFO, logger="dbops.profiling")

    @profiled("task:count_users")
    def count_users():
        return User.objects.count()

    settings.QUERY_PROFILING_ENABLED = False
    assert count_users() == 0
    assert messages(caplog, logging.INFO) == []
    settings.QUERY_PROFILING_ENABLED = True
    assert count_users() == 0
    summaries = [r.query_summary for r in caplog.records if getattr(r, "query_summary", None)]
    assert summaries and summaries[0]["source"] == "task:count_users" and summaries[0]["queries"] == 1


def test_celery_tasks_are_profiled_through_the_task_signals(settings, caplog):
    # apply() runs the task in-process with the same prerun/postrun signals a worker sends
    from multipult.celery import app

    caplog.set_level(logging.INFO, logger="dbops.profiling")

    @app.task(name="tests.count_users_twice")
    def count_users_twice():
        return User.objects.count() + User.objects.filter(is_active=True).count()

    settings.QUERY_PROFILING_ENABLED = True
    assert count_users_twice.apply().get() == 0
    summaries = [r.query_summary for r in caplog.records if getattr(r, "query_summary", None)]
    assert [(s["source"], s["queries"]) for s in summaries] == [("task:tests.count_users_twice", 2)]

    caplog.clear()
    settings.QUERY_PROFILING_ENABLED = False
    assert count_users_twice.apply().get() == 0
    assert [r for r in caplog.records if getattr(r, "query_summary", None)] == []


def test_savepoints_are_never_slow_queries(settings):
    profile = query_profile("nested", slow_threshold_ms=0)
    with profile, transaction.atomic(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 'inside a savepoint'")
    statements = [group.statement for group in profile.summary.slow]
    assert "SELECT ?" in statements, statements
    assert not [statement for statement in statements if "SAVEPOINT" in statement.upper()]
    # still counted and timed: they are statements, only never reported as slow
    assert any("SAVEPOINT" in group.statement for group in profile.summary.groups)
