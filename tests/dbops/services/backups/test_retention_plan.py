"""retention_plan: property tests over random backup histories and clocks (invariants, not a second
implementation), plus a few worked examples. Pure function: no database needed."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbops.exceptions import RetentionError
from dbops.models import BackupRecord, RetentionPolicy
from dbops.services.backups.retention import retention_plan

Status = BackupRecord.Status
Verified = BackupRecord.VerificationStatus
UTC = dt.UTC

NOW_RANGE = (dt.datetime(2020, 1, 1), dt.datetime(2030, 12, 31))


def make_backup(
    pk, started_at, status=Status.SUCCEEDED, verified=Verified.NEVER, kind="full", database="default", tag=""
):
    return BackupRecord(
        pk=pk,
        started_at=started_at,
        status=status,
        verification_status=verified,
        kind=kind,
        database_alias=database,
        tag=tag,
        engine="postgresql",
        database_name="multipult",
        format="custom",
    )


timezones = st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=-11)), dt.timezone(dt.timedelta(hours=5, minutes=30))])
clocks = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz), st.datetimes(min_value=NOW_RANGE[0], max_value=NOW_RANGE[1]), timezones
)
backup_specs = st.lists(
    st.tuples(
        # minutes before the clock (negative: after it, a clock skew or a backup started by another host)
        st.integers(min_value=-2 * 24 * 60, max_value=800 * 24 * 60),
        st.sampled_from([Status.SUCCEEDED] * 5 + [Status.FAILED, Status.RUNNING, Status.DELETED]),
        st.sampled_from([Verified.NEVER] * 3 + [Verified.PASSED, Verified.FAILED]),
        st.sampled_from(["full", "full", "full", "safety"]),
        st.sampled_from(["default", "default", "other"]),
    ),
    max_size=60,
)
policies = st.builds(
    lambda daily, weekly, monthly, last: RetentionPolicy(
        name="p", keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly, keep_last=last, database_alias="", kind=""
    ),
    st.integers(0, 10),
    st.integers(0, 8),
    st.integers(0, 14),
    st.one_of(st.none(), st.integers(0, 5)),
).filter(lambda p: p.keep_daily or p.keep_weekly or p.keep_monthly or p.keep_last)


def history(specs, now):
    return [
        make_backup(pk, now - dt.timedelta(minutes=minutes), status, verified, kind, database)
        for pk, (minutes, status, verified, kind, database) in enumerate(specs, start=1)
    ]


def groups_of(backups):
    groups = defaultdict(list)
    for backup in backups:
        groups[(backup.database_alias, backup.kind)].append(backup)
    return groups


def newest(backups):
    return max(backups, key=lambda b: (b.started_at, b.pk), default=None)


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(specs=backup_specs, now=clocks, policy=policies)
def test_plan_invariants(specs, now, policy):
    backups = history(specs, now)
    plan = retention_plan(backups=backups, policy=policy, now=now)
    decided = {decision.backup.pk: decision for decision in plan.decisions}

    # Every live backup gets exactly one decision with a reason; deleted records get none.
    live = [b for b in backups if b.status != Status.DELETED]
    assert sorted(decided) == sorted(b.pk for b in live)
    assert len(decided) == len(plan.decisions)
    assert all(decision.reasons and all(decision.reasons) for decision in plan.decisions)

    for group in groups_of(live).values():
        kept = [b for b in group if decided[b.pk].keep]
        deleted = [b for b in group if not decided[b.pk].keep]
        succeeded = [b for b in group if b.status == Status.SUCCEEDED]
        # Never deleted: a running backup, the newest verified one, anything started after the clock.
        assert not [b for b in deleted if b.status == Status.RUNNING]
        verified = newest([b for b in succeeded if b.verification_status == Verified.PASSED])
        assert verified is None or decided[verified.pk].keep
        assert not [b for b in deleted if b.started_at > now]
        # Never leaves a group without a successful backup.
        if succeeded:
            assert any(b.status == Status.SUCCEEDED for b in kept)
        # Only older backups go: each deleted one is older than a kept successful backup.
        newest_kept_success = newest([b for b in kept if b.status == Status.SUCCEEDED])
        for backup in deleted:
            assert (backup.started_at, backup.pk) < (newest_kept_success.started_at, newest_kept_success.pk)
        # The newest successful backup is always kept.
        if succeeded:
            assert decided[newest(succeeded).pk].keep
        # GFS keeps at most one successful past backup per rule slot (+ the verified and the newest one),
        # unless the zero-backups safety kept everything.
        if deleted:
            kept_past = [b for b in kept if b.status == Status.SUCCEEDED and b.started_at <= now]
            budget = policy.keep_daily + policy.keep_weekly + policy.keep_monthly + (policy.keep_last or 0) + 2
            assert len(kept_past) <= budget


def _local(backup, now):
    return backup.started_at.astimezone(now.tzinfo).date()


@PROPERTY_SETTINGS
@given(specs=backup_specs, now=clocks, policy=policies)
def test_newest_backup_of_each_covered_period_is_kept(specs, now, policy):
    backups = history(specs, now)
    plan = retention_plan(backups=backups, policy=policy, now=now)
    decided = {decision.backup.pk: decision for decision in plan.decisions}
    today = now.date()
    for group in groups_of([b for b in backups if b.status != Status.DELETED]).values():
        past = [b for b in group if b.status == Status.SUCCEEDED and b.started_at <= now]
        for days_ago in range(policy.keep_daily):
            day = today - dt.timedelta(days=days_ago)
            candidate = newest([b for b in past if _local(b, now) == day])
            assert candidate is None or decided[candidate.pk].keep, f"newest of {day} deleted"
        this_monday = today - dt.timedelta(days=today.weekday())
        for weeks_ago in range(policy.keep_weekly):
            monday = this_monday - dt.timedelta(weeks=weeks_ago)
            in_week = [b for b in past if monday <= _local(b, now) < monday + dt.timedelta(days=7)]
            candidate = newest(in_week)
            assert candidate is None or decided[candidate.pk].keep, f"newest of week {monday} deleted"
        year, month = today.year, today.month
        for _ in range(policy.keep_monthly):
            candidate = newest([b for b in past if (_local(b, now).year, _local(b, now).month) == (year, month)])
            assert candidate is None or decided[candidate.pk].keep, f"newest of {year}-{month} deleted"
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        for backup in sorted(past, key=lambda b: (b.started_at, b.pk), reverse=True)[: policy.keep_last or 0]:
            assert decided[backup.pk].keep


@PROPERTY_SETTINGS
@given(specs=backup_specs, now=clocks, policy=policies)
def test_applying_the_plan_twice_deletes_nothing_more(specs, now, policy):
    backups = history(specs, now)
    first = retention_plan(backups=backups, policy=policy, now=now)
    survivors = [decision.backup for decision in first.keep]
    second = retention_plan(backups=survivors, policy=policy, now=now)
    assert second.delete == []


@PROPERTY_SETTINGS
@given(specs=backup_specs, now=clocks, policy=policies)
def test_scope_limits_what_a_policy_touches(specs, now, policy):
    backups = history(specs, now)
    policy.database_alias, policy.kind = "default", "full"
    plan = retention_plan(backups=backups, policy=policy, now=now)
    assert all(d.backup.database_alias == "default" and d.backup.kind == "full" for d in plan.decisions)


def test_gfs_example_thirty_nightly_backups():
    # Given a nightly backup at 02:00 for 60 days, on Wednesday 2026-03-18 at 12:00 UTC
    now = dt.datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
    backups = [make_backup(pk, now.replace(hour=2) - dt.timedelta(days=pk - 1)) for pk in range(1, 61)]
    policy = RetentionPolicy(name="p", keep_daily=7, keep_weekly=4, keep_monthly=3, keep_last=None)
    # When planning
    plan = retention_plan(backups=backups, policy=policy, now=now)
    kept_days = sorted(d.backup.started_at.date().isoformat() for d in plan.keep)
    # Then: the last 7 days, the Sundays closing ISO weeks 10 and 9 (11 is in the 7 days), Feb 28 and Jan 31
    assert kept_days == sorted(
        [f"2026-03-{day:02d}" for day in range(12, 19)] + ["2026-03-08", "2026-03-01", "2026-02-28", "2026-01-31"]
    )
    reasons = {d.backup.started_at.date().isoformat(): d.reason for d in plan.keep}
    assert reasons["2026-03-18"] == "daily 2026-03-18; weekly 2026-W12; monthly 2026-03"
    assert reasons["2026-01-31"] == "monthly 2026-01"
    assert all(d.reason.startswith("not selected by daily 7, weekly 4, monthly 3") for d in plan.delete)
    assert len(plan.delete) == 60 - len(kept_days)


def test_zero_backups_safety_keeps_everything():
    now = dt.datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
    backups = [make_backup(pk, now - dt.timedelta(days=100 + pk)) for pk in range(1, 5)]
    plan = retention_plan(
        backups=backups, policy=RetentionPolicy(name="p", keep_daily=3, keep_weekly=0, keep_monthly=0), now=now
    )
    assert plan.delete == []
    assert {d.reason for d in plan.keep} == {
        "safety: the policy would leave no successful backup, so nothing is deleted"
    }


def test_old_failed_backups_go_and_newer_ones_stay():
    now = dt.datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
    backups = [
        make_backup(1, now - dt.timedelta(hours=1), status=Status.FAILED),
        make_backup(2, now - dt.timedelta(hours=2)),
        make_backup(3, now - dt.timedelta(hours=3), status=Status.FAILED),
        make_backup(4, now - dt.timedelta(days=40), status=Status.RUNNING),
        make_backup(5, now - dt.timedelta(days=50), verified=Verified.PASSED),
    ]
    policy = RetentionPolicy(name="p", keep_daily=1, keep_weekly=0, keep_monthly=0)
    plan = retention_plan(backups=backups, policy=policy, now=now)
    assert {d.backup.pk: d.reason for d in plan.keep} == {
        1: "newer than the newest successful backup",
        2: "daily 2026-03-18",
        4: "running",
        5: "newest verified backup",
    }
    assert [(d.backup.pk, d.reason) for d in plan.delete] == [(3, "failed and older than a kept backup")]


@pytest.mark.parametrize(
    "rules, message",
    [
        ({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}, "keeps nothing"),
        ({"keep_daily": -1}, "negative daily"),
    ],
)
def test_unusable_rules_are_refused(rules, message):
    policy = RetentionPolicy(name="p", **rules)
    with pytest.raises(RetentionError, match=message):
        retention_plan(backups=[], policy=policy, now=dt.datetime(2026, 1, 1, tzinfo=UTC))


def test_naive_clock_is_refused():
    with pytest.raises(RetentionError, match="aware"):
        retention_plan(backups=[], policy=RetentionPolicy(name="p"), now=dt.datetime(2026, 1, 1))


def test_the_last_restore_point_survives_when_backups_stopped():
    # Backups stopped two months ago: the daily window is empty, but the newest good backup stays.
    now = dt.datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
    backups = [
        make_backup(1, now - dt.timedelta(days=60)),
        make_backup(2, now - dt.timedelta(days=61), verified=Verified.PASSED),
        make_backup(3, now - dt.timedelta(days=62)),
    ]
    plan = retention_plan(
        backups=backups, policy=RetentionPolicy(name="p", keep_daily=7, keep_weekly=0, keep_monthly=0), now=now
    )
    assert {d.backup.pk: d.reason for d in plan.keep} == {1: "newest successful backup", 2: "newest verified backup"}
    assert [d.backup.pk for d in plan.delete] == [3]
