"""Which retention policies a run applies: a saved one, one given by counts, or every enabled one."""

from __future__ import annotations

from typing import TypedDict, Unpack

from django.db import DEFAULT_DB_ALIAS, connections

from dbops.exceptions import NoRetentionPolicy, RetentionError
from dbops.models import BackupRecord, RetentionPolicy


def policy_validate(*, policy: RetentionPolicy) -> None:
    """Rejects rules that cannot be applied, before any work."""
    counts = {
        "daily": policy.keep_daily,
        "weekly": policy.keep_weekly,
        "monthly": policy.keep_monthly,
        "last": policy.keep_last or 0,
    }
    negative = [name for name, count in counts.items() if count < 0]
    if negative:
        raise RetentionError(f"Retention counts must be zero or more (got a negative {', '.join(negative)}).")
    window = policy.recovery_window_days
    if window is not None and window < 1:
        raise RetentionError("A recovery window is at least 1 day.", parameter="recovery_window_days")
    if window and policy.kind not in ("", BackupRecord.Kind.BASE):
        raise RetentionError(
            f"A recovery window keeps PITR base backups; the policy covers {policy.kind} backups only.",
            parameter="recovery_window_days",
        )
    if not any(counts.values()) and not window:
        raise RetentionError(
            "The retention policy keeps nothing: set at least one of daily, weekly, monthly, last or a recovery window."
        )
    if policy.database_alias and policy.database_alias not in connections.settings:
        raise RetentionError(
            f"Retention policy {policy.name or '(ad hoc)'!r} names the database alias {policy.database_alias!r}, "
            f"which is not configured (known: {', '.join(connections.settings)})."
        )


class RetentionScope(TypedDict, total=False):
    """Which policies a run applies: a saved one by name (its counts overridden when counts are given,
    not saved), an ad-hoc one from the counts alone, or (neither) every enabled policy."""

    policy_name: str | None
    daily: int | None
    weekly: int | None
    monthly: int | None
    keep_last: int | None
    recovery_window_days: int | None
    database: str  # scope of an ad-hoc run (default "default")
    tag: str  # scope of an ad-hoc run


def retention_policies_resolve(**scope: Unpack[RetentionScope]) -> list[RetentionPolicy]:
    """The policies a run applies: the named one (counts overridden, not saved), an ad-hoc one from
    the counts, or every enabled policy."""
    policy_name, keep_last = scope.get("policy_name"), scope.get("keep_last")
    database, tag = scope.get("database", DEFAULT_DB_ALIAS), scope.get("tag", "")
    daily, weekly, monthly = scope.get("daily"), scope.get("weekly"), scope.get("monthly")
    overrides = {
        key: value
        for key, value in {"keep_daily": daily, "keep_weekly": weekly, "keep_monthly": monthly}.items()
        if value is not None
    }
    if keep_last is not None:
        overrides["keep_last"] = keep_last
    if scope.get("recovery_window_days") is not None:
        overrides["recovery_window_days"] = scope["recovery_window_days"]
    if policy_name:
        policy = RetentionPolicy.objects.filter(name=policy_name).first()
        if policy is None:
            known = ", ".join(RetentionPolicy.objects.values_list("name", flat=True)) or "none"
            raise RetentionError(f"No retention policy named {policy_name!r} (known: {known}).")
        if overrides:
            # Counts given on the command line make this a one-off: the saved policy stays as it is.
            policy = RetentionPolicy(
                name=policy.name,
                database_alias=policy.database_alias,
                kind=policy.kind,
                tag=policy.tag,
                keep_daily=policy.keep_daily,
                keep_weekly=policy.keep_weekly,
                keep_monthly=policy.keep_monthly,
                keep_last=policy.keep_last,
                recovery_window_days=policy.recovery_window_days,
            )
            for key, value in overrides.items():
                setattr(policy, key, value)
        policies = [policy]
    elif overrides:
        # Counts not given are zero: an ad-hoc run keeps exactly what it was told to.
        # A recovery window covers base backups, the counts every kind (each kind planned on its own).
        kind = "" if "recovery_window_days" in overrides else BackupRecord.Kind.FULL
        policy = RetentionPolicy(
            name="", database_alias=database, tag=tag, kind=kind, keep_daily=0, keep_weekly=0, keep_monthly=0
        )
        for key, value in overrides.items():
            setattr(policy, key, value)
        policies = [policy]
    else:
        # each saved policy is checked when it is applied: one that cannot be never stops the others
        policies = list(RetentionPolicy.objects.filter(enabled=True))
        if not policies:
            raise NoRetentionPolicy(
                "No enabled retention policy: create one in the admin (or run setup_schedules), or give the counts "
                "of daily, weekly and monthly backups to keep."
            )
        return policies
    policy_validate(policy=policies[0])
    return policies
