"""Grandfather-father-son retention: which backups to keep (and why), and applying that plan.

`retention_plan` is a pure function of the backups, the policy and a clock, so it can be tested over
random histories; `retention_apply` loads the catalog, plans, and deletes through `backup_delete`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Unpack

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from dbops.engines import get_connector
from dbops.exceptions import DbopsError, RetentionError
from dbops.models import BackupRecord, RetentionPolicy
from dbops.services.backups.create import backup_delete
from dbops.services.backups.leftovers import LeftoversReport, restore_leftovers_recover
from dbops.services.backups.pre_restore import PreRestorePrune, pre_restore_databases_prune
from dbops.services.backups.recovery_window import RecoveryWindow, recovery_window_keep
from dbops.services.backups.retention_policies import RetentionScope, policy_validate, retention_policies_resolve
from dbops.services.pitr.wal_retention import WalPrune, wal_prune

logger = logging.getLogger(__name__)

Status = BackupRecord.Status

SAFETY_ZERO = "safety: the policy would leave no successful backup, so nothing is deleted"


@dataclass(frozen=True)
class RetentionDecision:
    backup: BackupRecord
    keep: bool
    reasons: tuple[str, ...]

    @property
    def action(self) -> str:
        return "keep" if self.keep else "delete"

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def as_dict(self) -> dict:
        backup = self.backup
        return {
            "id": backup.pk,
            "action": self.action,
            "reason": self.reason,
            "status": backup.status,
            "kind": backup.kind,
            "database": backup.database_alias,
            "tag": backup.tag,
            "started_at": backup.started_at.isoformat(),
            "verification_status": backup.verification_status,
            "pinned": backup.pinned,
        }


@dataclass(frozen=True)
class RetentionPlan:
    policy_name: str
    now: dt.datetime
    decisions: tuple[RetentionDecision, ...]
    windows: tuple[RecoveryWindow, ...] = ()  # what the policy's recovery window guarantees, per database

    @property
    def keep(self) -> list[RetentionDecision]:
        return [decision for decision in self.decisions if decision.keep]

    @property
    def delete(self) -> list[RetentionDecision]:
        return [decision for decision in self.decisions if not decision.keep]

    def as_dict(self) -> dict:
        return {
            "policy": self.policy_name,
            "now": self.now.isoformat(),
            "keep": [decision.as_dict() for decision in self.keep],
            "delete": [decision.as_dict() for decision in self.delete],
            "recovery_windows": [window.as_dict() for window in self.windows],
        }


def _in_scope(backup: BackupRecord, policy: RetentionPolicy) -> bool:
    return (
        (not policy.database_alias or backup.database_alias == policy.database_alias)
        and (not policy.kind or backup.kind == policy.kind)
        and (not policy.tag or backup.tag == policy.tag)
    )


def _newest_first_key(backup: BackupRecord) -> tuple:
    return (backup.started_at, backup.pk or 0)


def _last_days(today: dt.date, count: int) -> set[dt.date]:
    return {today - dt.timedelta(days=offset) for offset in range(count)}


def _last_iso_weeks(today: dt.date, count: int) -> set[tuple[int, int]]:
    monday = today - dt.timedelta(days=today.weekday())
    return {tuple((monday - dt.timedelta(weeks=offset)).isocalendar())[:2] for offset in range(count)}


def _last_months(today: dt.date, count: int) -> set[tuple[int, int]]:
    index = today.year * 12 + today.month - 1
    return {divmod(index - offset, 12) for offset in range(count)}


def _gfs_reasons(succeeded: Sequence[BackupRecord], policy: RetentionPolicy, now: dt.datetime) -> dict[int, list[str]]:
    """Reasons to keep each successful backup (newest first, none after `now`), keyed by position."""
    reasons: dict[int, list[str]] = defaultdict(list)
    today = now.date()
    days = _last_days(today, policy.keep_daily)
    weeks = _last_iso_weeks(today, policy.keep_weekly)
    months = {(year, month + 1) for year, month in _last_months(today, policy.keep_monthly)}
    seen_days: set = set()
    seen_weeks: set = set()
    seen_months: set = set()
    for position, backup in enumerate(succeeded):
        local = backup.started_at.astimezone(now.tzinfo).date()
        week = tuple(local.isocalendar())[:2]
        month = (local.year, local.month)
        if local in days and local not in seen_days:
            seen_days.add(local)
            reasons[position].append(f"daily {local.isoformat()}")
        if week in weeks and week not in seen_weeks:
            seen_weeks.add(week)
            reasons[position].append(f"weekly {week[0]}-W{week[1]:02d}")
        if month in months and month not in seen_months:
            seen_months.add(month)
            reasons[position].append(f"monthly {month[0]}-{month[1]:02d}")
        if policy.keep_last and position < policy.keep_last:
            reasons[position].append(f"last {position + 1} of {policy.keep_last}")
    return reasons


def _plan_group(
    group: list[BackupRecord], policy: RetentionPolicy, now: dt.datetime, windows: list[RecoveryWindow]
) -> list[RetentionDecision]:
    """Plans one database/kind: GFS over its successful backups (and, for base backups, the recovery
    window, whose guarantee is appended to `windows`), plus the never-delete rules."""
    group = sorted(group, key=_newest_first_key, reverse=True)
    reasons: dict[int, list[str]] = defaultdict(list)  # keyed by id() of the record
    succeeded = [backup for backup in group if backup.status == Status.SUCCEEDED]
    newest_success = succeeded[0] if succeeded else None

    in_past = [backup for backup in succeeded if backup.started_at <= now]
    for position, why in _gfs_reasons(in_past, policy, now).items():
        reasons[id(in_past[position])].extend(why)
    if policy.recovery_window_days and group[0].kind == BackupRecord.Kind.BASE:
        positions, window = recovery_window_keep(
            in_past, days=policy.recovery_window_days, now=now, database_alias=group[0].database_alias
        )
        windows.append(window)
        for position in positions:
            reasons[id(in_past[position])].append(f"recovery window {policy.recovery_window_days} days")
    newest_verified = next(
        (b for b in succeeded if b.verification_status == BackupRecord.VerificationStatus.PASSED), None
    )
    if newest_verified is not None:
        reasons[id(newest_verified)].append("newest verified backup")
    for backup in group:
        if backup.pinned:
            reasons[id(backup)].append("pinned")
        if backup.status == Status.RUNNING:
            reasons[id(backup)].append("running")
        if backup.status == Status.MISSING:  # not found at the last look; deleting it would make that final
            reasons[id(backup)].append("missing from storage at the last look (kept: it may reappear)")
        if backup.started_at > now:
            reasons[id(backup)].append("started after this run's clock")
        if backup.status != Status.SUCCEEDED and (
            newest_success is None or _newest_first_key(backup) > _newest_first_key(newest_success)
        ):
            reasons[id(backup)].append("newer than the newest successful backup")

    # Without a successful backup every other record is "newer than the newest successful" and kept.
    if succeeded and not any(reasons.get(id(backup)) for backup in succeeded):
        return [RetentionDecision(backup, True, (SAFETY_ZERO,)) for backup in group]
    # The latest restore point survives even when backups stopped and it fell out of every window.
    if newest_success is not None and not reasons.get(id(newest_success)):
        reasons[id(newest_success)].append("newest successful backup")

    not_selected = (f"not selected by {policy.rules_display}",)
    decisions = []
    for backup in group:
        why = reasons.get(id(backup))
        if why:
            decisions.append(RetentionDecision(backup, True, tuple(why)))
        elif backup.status == Status.SUCCEEDED:
            decisions.append(RetentionDecision(backup, False, not_selected))
        else:
            decisions.append(RetentionDecision(backup, False, (f"{backup.status} and older than a kept backup",)))
    return decisions


def retention_plan(*, backups: Iterable[BackupRecord], policy: RetentionPolicy, now: dt.datetime) -> RetentionPlan:
    """Keep/delete, with reasons, for every live backup the policy covers; changes nothing.

    Each database and kind is planned on its own: the newest successful backup of each of the last
    N days, ISO weeks and months (in `now`'s time zone) and the newest `keep_last` are kept. Never
    deleted: the newest successful backup, a running backup, the newest verified one, anything newer
    than the newest successful one or started after `now`; and nothing at all in a group where the
    rules alone would keep no successful backup.
    """
    if timezone.is_naive(now):
        raise RetentionError("retention_plan needs an aware datetime for `now`.")
    policy_validate(policy=policy)
    groups: dict[tuple[str, str], list[BackupRecord]] = defaultdict(list)
    for backup in backups:
        if backup.status != Status.DELETED and _in_scope(backup, policy):
            groups[(backup.database_alias, backup.kind)].append(backup)
    decisions: list[RetentionDecision] = []
    windows: list[RecoveryWindow] = []
    for key in sorted(groups):
        decisions.extend(_plan_group(groups[key], policy, now, windows))
    name = policy.name or "(ad hoc)"
    return RetentionPlan(policy_name=name, now=now, decisions=tuple(decisions), windows=tuple(windows))


@dataclass
class RetentionOutcome:
    plan: RetentionPlan
    dry_run: bool
    deleted: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    error: str = ""  # why the policy could not be applied at all (its plan is then empty)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.error

    def as_dict(self) -> dict:
        return {
            **self.plan.as_dict(),
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "skipped": [{"id": pk, "reason": why} for pk, why in self.skipped],
            "failed": [{"id": pk, "error": error} for pk, error in self.failed],
            "error": self.error,
        }


def _plan_from_catalog(policy: RetentionPolicy, now: dt.datetime) -> RetentionPlan:
    candidates = BackupRecord.objects.exclude(status=Status.DELETED)
    if policy.database_alias:
        candidates = candidates.filter(database_alias=policy.database_alias)
    return retention_plan(backups=list(candidates), policy=policy, now=now)


def retention_apply(
    *, policy: RetentionPolicy, now: dt.datetime | None = None, dry_run: bool = False, wait_for_lock: bool = False
) -> RetentionOutcome:
    """Plans the policy over the catalog and, unless `dry_run`, deletes the planned backups.

    Deletions happen under the backup engine's per-database lock, so no backup or restore of the
    database runs meanwhile: BackupLockedError if one does (unless `wait_for_lock`). The plan is
    made again once the lock is held. One failed deletion does not stop the others; every failure
    is in the outcome, and a saved policy records the outcome of its last real run.
    """
    now = now or timezone.localtime()  # calendar days, weeks and months in settings.TIME_ZONE
    plan = _plan_from_catalog(policy, now)
    outcome = RetentionOutcome(plan=plan, dry_run=dry_run)
    if dry_run or not plan.delete:
        return _record_run(policy, outcome, now)
    with ExitStack() as locks:
        for alias in sorted({decision.backup.database_alias for decision in plan.delete}):
            if alias in connections.settings:  # records of a removed alias have no database to lock
                locks.enter_context(get_connector(alias).lock(wait=wait_for_lock))
        outcome.plan = plan = _plan_from_catalog(policy, now)
        _delete_planned(plan, outcome)
    return _record_run(policy, outcome, now)


def _delete_planned(plan: RetentionPlan, outcome: RetentionOutcome) -> None:
    for decision in plan.delete:
        planned = decision.backup
        current = BackupRecord.objects.filter(pk=planned.pk).first()
        if current is None or current.status != planned.status or current.pinned:
            changed = "pinned since planning" if current is not None and current.pinned else "changed since planning"
            outcome.skipped.append((planned.pk, changed))
            continue
        try:
            backup_delete(backup_record=current, reason=f"retention {plan.policy_name}: {decision.reason}")
        except (DbopsError, OSError) as exc:
            logger.warning("retention could not delete backup %s: %s", planned.pk, exc)
            outcome.failed.append((planned.pk, str(exc)))
        else:
            outcome.deleted.append(planned.pk)


def _record_run(policy: RetentionPolicy, outcome: RetentionOutcome, now: dt.datetime) -> RetentionOutcome:
    plan = outcome.plan
    if outcome.dry_run:
        return outcome
    logger.info(
        "retention %s: kept %d, deleted %d, failed %d",
        plan.policy_name,
        len(plan.keep),
        len(outcome.deleted),
        len(outcome.failed),
    )
    if policy.pk:
        policy.last_run_at = now
        policy.last_run_ok = outcome.ok
        policy.last_run_summary = {
            "kept": len(plan.keep),
            "deleted": outcome.deleted,
            "failed": [{"id": pk, "error": error} for pk, error in outcome.failed],
            **({"error": outcome.error} if outcome.error else {}),
        }
        policy.save(update_fields=["last_run_at", "last_run_ok", "last_run_summary"])
    return outcome


def _apply_isolated(
    policy: RetentionPolicy, *, now: dt.datetime, dry_run: bool, wait_for_lock: bool, alone: bool
) -> RetentionOutcome:
    """One policy of a run. Its failure is recorded as its last run; it ends the run only when the run
    applies nothing else (`alone`), so one broken policy never stops the others."""
    try:
        return retention_apply(policy=policy, now=now, dry_run=dry_run, wait_for_lock=wait_for_lock)
    except DbopsError as exc:
        logger.warning("retention policy %s could not be applied: %s", policy.name, exc)
        plan = RetentionPlan(policy_name=policy.name or "(ad hoc)", now=now, decisions=())
        outcome = _record_run(policy, RetentionOutcome(plan=plan, dry_run=dry_run, error=str(exc)), now)
        if alone:
            raise
        return outcome


@dataclass
class RetentionRun:
    outcomes: list[RetentionOutcome]
    pre_restore: list[PreRestorePrune]
    dry_run: bool
    wal: WalPrune | None = None  # only when a policy covers PITR base backups
    leftovers: LeftoversReport = field(default_factory=LeftoversReport)  # of interrupted restores, repaired first

    @property
    def ok(self) -> bool:
        return (
            all(outcome.ok for outcome in self.outcomes)
            and not any(prune.failed for prune in self.pre_restore)
            and not (self.wal and self.wal.failed)
            and not self.leftovers.failed
        )

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "policies": [outcome.as_dict() for outcome in self.outcomes],
            "pre_restore_databases": [prune.as_dict() for prune in self.pre_restore],
            "wal": self.wal.as_dict() if self.wal else None,
            "interrupted_restores": self.leftovers.as_dict(),
        }


def retention_run(
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    wait_for_lock: bool = False,
    **scope: Unpack[RetentionScope],
) -> RetentionRun:
    """One retention run (the command and the scheduled task): what interrupted restores left is repaired
    first (even in a dry run: it is recovery, not retention), then every policy it covers is applied,
    then the `<name>_pre_restore_<time>` databases of the covered databases but the newest are dropped,
    and, when a policy covers PITR base backups, the archived WAL no kept base backup needs.
    Inputs are checked before anything is deleted."""
    database, tag, policy_name = scope.get("database", DEFAULT_DB_ALIAS), scope.get("tag", ""), scope.get("policy_name")
    if database not in connections.settings:
        raise RetentionError(f"Unknown database alias {database!r} (known: {', '.join(connections.settings)}).")
    leftovers = restore_leftovers_recover()
    counts = ("daily", "weekly", "monthly", "keep_last", "recovery_window_days")
    by_counts = any(scope.get(count) is not None for count in counts)
    if (tag or database != DEFAULT_DB_ALIAS) and (policy_name or not by_counts):
        scoped_by = "tag" if tag else "database"
        raise RetentionError(
            f"A {scoped_by} scopes only a run given by counts (daily, weekly, monthly, keep-last); "
            "a saved policy has its own scope (edit it in the admin).",
            parameter=scoped_by,
        )
    policies = retention_policies_resolve(**scope)
    now = now or timezone.localtime()  # calendar days, weeks and months in settings.TIME_ZONE
    alone = bool(policy_name or by_counts)
    outcomes = [
        _apply_isolated(policy, now=now, dry_run=dry_run, wait_for_lock=wait_for_lock, alone=alone)
        for policy in policies
    ]
    applied = [policy for policy, outcome in zip(policies, outcomes, strict=True) if not outcome.error]
    aliases = sorted(
        {alias for policy in applied for alias in ([policy.database_alias] if policy.database_alias else connections)}
    )
    pre_restore = [pre_restore_databases_prune(database=alias, dry_run=dry_run) for alias in aliases]
    covers_base_backups = any(policy.kind in ("", BackupRecord.Kind.BASE) for policy in applied)
    deleting = frozenset(d.backup.pk for outcome in outcomes for d in outcome.plan.delete) if dry_run else frozenset()
    wal = wal_prune(dry_run=dry_run, deleting=deleting) if covers_base_backups else None
    return RetentionRun(outcomes=outcomes, pre_restore=pre_restore, dry_run=dry_run, wal=wal, leftovers=leftovers)
