"""The rename swap of a full PostgreSQL restore, and the repair of what interrupted runs leave.

A full restore loads into `<name>_restoring_<stamp>`, then renames `<name>` -> `<name>_pre_restore_<stamp>`
and the fresh copy -> `<name>` in ONE transaction (PostgreSQL accepts ALTER DATABASE … RENAME in a
transaction block): a kill or a lost connection at any point leaves the old or the new database under
the name, never neither.

`restore_leftovers_recover` repairs, on the maintenance database (so it works while `<name>` is missing):
- a half-done swap, the state an older, non-atomic run leaves when killed between its two renames:
  `<name>` missing, `<name>_pre_restore_<stamp>` present. It is UNDONE (the newest pre-restore copy renamed
  back, the unswapped copy dropped) rather than finished: that run never reported success, re-synced the
  catalog or wrote its audit entry, so its operator was told it failed, and "a failed restore leaves the
  database as it was" is the promise; the pre-restore copy is exactly that database. Without such a copy
  nothing is guessed: an unswapped copy cannot be proven complete by a later process, so it is kept and
  the problem reported (the operator renames what they trust, or restores again);
- `<name>_restoring_*` and `<name>_verify_*` scratch databases of dead runs, only when the advisory lock
  shows no backup/restore (resp. verification) of the database running.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager

from dbops.engines.base import Connector, LeftoversRecovery
from dbops.engines.postgresql import maintenance
from dbops.engines.postgresql.maintenance import MAINTENANCE_DB, first_line
from dbops.exceptions import DatabaseUnavailable, RestoreError

STAMP_DIGITS = 14  # %Y%m%d%H%M%S
PRE_RESTORE_INFIX = "_pre_restore_"
RESTORING_INFIX = "_restoring_"
VERIFY_INFIX = "_verify_"
SWAP_ATTEMPTS = 5  # each waits up to 5 s inside PostgreSQL for ended sessions to go
OBJECT_IN_USE = "55006"  # "database … is being accessed by other users": a client reconnected in between
RESTORE_LOCK_SCOPE = "dbops"  # held by backups and restores (exclusive)
VERIFY_LOCK_SCOPE = "dbops-verify"  # held shared by each verification's scratch restore

TERMINATE_SQL = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()"
)


def stamped_name(base: str, infix: str, stamp: str) -> str:
    """`<base><infix><stamp>` cut to PostgreSQL's 63-byte identifier limit (keeping infix and stamp)."""
    suffix = f"{infix}{stamp}"
    return base[: 63 - len(suffix)] + suffix


def stamped_pattern(base: str, infix: str) -> re.Pattern:
    prefix = stamped_name(base, infix, "0" * STAMP_DIGITS)[:-STAMP_DIGITS]
    return re.compile(re.escape(prefix) + r"(\d{" + str(STAMP_DIGITS) + "})")


# -- the swap -----------------------------------------------------------------------------------------
def renames_commit(admin, renames: list[tuple[str, str]]) -> None:
    """Ends the other sessions on the renamed databases, then renames them all in one transaction on
    `admin`; retried while a client reconnects in between. Raises the driver's error of the last try."""
    for attempt in range(SWAP_ATTEMPTS):
        with admin.cursor() as cursor:
            cursor.execute(TERMINATE_SQL, [[old for old, _ in renames]])
        admin.autocommit = False
        try:
            for old, new in renames:
                maintenance.database_rename(admin, old, new)
            admin.commit()
            return
        except maintenance.Error as exc:
            if admin.closed:  # the connection is gone: whether COMMIT got through is for the caller to find out
                raise
            admin.rollback()
            if getattr(exc, "pgcode", None) != OBJECT_IN_USE or attempt == SWAP_ATTEMPTS - 1:
                raise
        finally:
            if not admin.closed:
                admin.autocommit = True


def databases_swap(connector: Connector, *, target: str, fresh: str, previous: str) -> None:
    """Puts `fresh` in place of `target` and keeps the old one as `previous`, atomically. On failure
    raises RestoreError saying exactly which databases exist afterwards (checked, not assumed)."""
    try:
        admin = maintenance.maintenance_connect(connector.settings_dict)
    except DatabaseUnavailable as exc:
        error: BaseException = exc
    else:
        try:
            renames_commit(admin, [(target, previous), (fresh, target)])
            return
        except maintenance.Error as exc:
            error = exc
        finally:
            admin.close()
    present = _existing(connector, [target, fresh, previous])
    if present is None:
        raise RestoreError(
            f"Lost the connection to PostgreSQL while swapping in the restored database ({first_line(error)}). "
            f"The swap is one transaction: database {target} is either as it was (with {fresh} beside it) or "
            f"restored (with the old one kept as {previous}); the next dbops command or health_check says which "
            f"and drops {fresh} if it is still there."
        ) from error
    if present == {target, previous}:
        return  # COMMIT went through before the connection broke: the restore is done
    if present == {target, fresh}:
        dropped = scratch_drop(connector, fresh)
        raise RestoreError(
            f"Could not swap in the restored database: {first_line(error)}. Database {target} was left as it "
            f"was; the restored copy {dropped}"
        ) from error
    if present == {target}:
        raise RestoreError(
            f"Could not swap in the restored database: {first_line(error)}. Database {target} was left as it "
            f"was; the restored copy {fresh} is gone (dropped by someone else)."
        ) from error
    listing = ", ".join(sorted(present)) or "none of them"
    raise RestoreError(
        f"Could not swap in the restored database: {first_line(error)}. Of {target}, {fresh} and {previous}, "
        f"these exist now: {listing}. The next dbops command or health_check repairs a missing {target}."
    ) from error


def scratch_drop(connector: Connector, name: str) -> str:
    """Drops a scratch database on a new maintenance connection; says in a sentence what happened."""
    try:
        admin = maintenance.maintenance_connect(connector.settings_dict)
        try:
            maintenance.database_drop(admin, name, force=True)
        finally:
            admin.close()
    except (DatabaseUnavailable, maintenance.Error) as exc:
        return f"{name} could not be dropped ({first_line(exc)}): the next dbops command drops it."
    return f"{name} was dropped."


def _existing(connector: Connector, names: list[str]) -> set[str] | None:
    """Which of `names` exist, on a new connection; None when the server cannot be asked."""
    try:
        admin = maintenance.maintenance_connect(connector.settings_dict)
    except DatabaseUnavailable:
        return None
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", [names])
            return {row[0] for row in cursor.fetchall()}
    except maintenance.Error:
        return None
    finally:
        admin.close()


# -- the repair of interrupted runs ---------------------------------------------------------------------
def restore_leftovers_recover(connectors: list[Connector]) -> LeftoversRecovery:
    """See the module docstring; for databases on one server (same host, port and user), with one
    connection and one catalog query when there is nothing to do. Raises DatabaseUnavailable when the
    server cannot be reached."""
    infixes = (PRE_RESTORE_INFIX, RESTORING_INFIX, VERIFY_INFIX)
    patterns = {
        c.database_name: {infix: stamped_pattern(c.database_name, infix) for infix in infixes} for c in connectors
    }
    alternatives = "|".join(pattern.pattern for by_infix in patterns.values() for pattern in by_infix.values())
    found = LeftoversRecovery()
    admin = connectors[0]._raw_connection(MAINTENANCE_DB)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s) OR datname ~ %s ORDER BY datname",
                [list(patterns), f"^(?:{alternatives})$"],
            )
            names = [row[0] for row in cursor.fetchall()]
        for connector in connectors:
            target = connector.database_name
            by_infix = {
                infix: [n for n in names if pattern.fullmatch(n)] for infix, pattern in patterns[target].items()
            }
            target_present = target in names
            # A missing database with no copy of a restore beside it was never created or was dropped by
            # hand: not a restore's doing, and the command's own error says it is missing.
            half_done = not target_present and bool(by_infix[PRE_RESTORE_INFIX] or by_infix[RESTORING_INFIX])
            if by_infix[RESTORING_INFIX] or half_done:
                _recover_restores(
                    connector,
                    admin,
                    found,
                    target_present=target_present,
                    previous=by_infix[PRE_RESTORE_INFIX],
                    restoring=by_infix[RESTORING_INFIX],
                )
            if by_infix[VERIFY_INFIX]:
                _recover_verifications(connector, admin, found, verifying=by_infix[VERIFY_INFIX])
    finally:
        admin.close()
    return found


def restore_leftovers_recover_by_server(connectors: list[Connector]) -> LeftoversRecovery:
    """restore_leftovers_recover once per server (host, port, user) for the databases on it."""
    by_server: dict[tuple, list[Connector]] = {}
    for connector in connectors:
        settings_dict = connector.settings_dict
        server = (settings_dict.get("HOST"), settings_dict.get("PORT"), settings_dict.get("USER"))
        by_server.setdefault(server, []).append(connector)
    found = LeftoversRecovery()
    for same_server in by_server.values():
        found.extend(restore_leftovers_recover(same_server))
    return found


@contextmanager
def _lock_tried(admin, key: int) -> Iterator[bool]:
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        locked = cursor.fetchone()[0]
    try:
        yield locked
    finally:
        if locked and not admin.closed:
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _recover_restores(
    connector: Connector,
    admin,
    found: LeftoversRecovery,
    *,
    target_present: bool,
    previous: list[str],
    restoring: list[str],
) -> None:
    target = connector.database_name
    with _lock_tried(admin, lock_key(connector.database_name, RESTORE_LOCK_SCOPE)) as locked:
        if not locked:
            if not target_present:
                found.database_missing = True
                found.failed.append(
                    f"Database {target} is missing while a backup or restore of it holds the lock (an older "
                    "dbops may be between its two renames): left as it is; run any dbops command when it has ended."
                )
            else:
                found.left_alone.append(f"{', '.join(restoring)}: a backup or restore of {target} is running.")
            return
        interrupted_stamp = ""
        if not target_present:
            if not previous:
                found.database_missing = True
                kept = f" {', '.join(restoring)} may hold an unfinished restore and was kept." if restoring else ""
                found.failed.append(
                    f"Database {target} is missing and there is no {target}{PRE_RESTORE_INFIX}* copy to put "
                    f"back.{kept} Restore a backup, or rename the database you trust to {target}."
                )
                return  # never drop a copy that may be the only one left
            newest = previous[-1]  # names differ only in their stamp, so sorted by name is sorted by time
            try:
                renames_commit(admin, [(newest, target)])
            except maintenance.Error as exc:
                found.database_missing = True
                found.failed.append(
                    f"Database {target} is missing after an interrupted restore; putting {newest} back as "
                    f"{target} failed: {first_line(exc)}"
                )
                return
            interrupted_stamp = newest[-STAMP_DIGITS:]
            found.done.append(
                f"Database {target} was missing after a restore interrupted between its two renames: put {newest} "
                f"(the database as it was before that restore) back as {target}."
            )
        for name in restoring:
            what = (
                "the copy that interrupted restore had loaded but not swapped in"
                if name.endswith(interrupted_stamp) and interrupted_stamp
                else f"the unfinished copy of an interrupted restore of {target}"
            )
            _drop_reporting(connector, admin, found, name, what)


def _recover_verifications(connector: Connector, admin, found: LeftoversRecovery, *, verifying: list[str]) -> None:
    target = connector.database_name
    with _lock_tried(admin, lock_key(connector.database_name, VERIFY_LOCK_SCOPE)) as locked:
        if not locked:
            found.left_alone.append(f"{', '.join(verifying)}: a verification of a backup of {target} is running.")
            return
        for name in verifying:
            _drop_reporting(connector, admin, found, name, "the scratch database of an interrupted verification")


def _drop_reporting(connector: Connector, admin, found: LeftoversRecovery, name: str, what: str) -> None:
    try:
        maintenance.database_drop(admin, name, force=True)
    except maintenance.Error as exc:
        found.failed.append(f"Could not drop {name}, {what}: {first_line(exc)}")
    else:
        found.done.append(f"Dropped {name}, {what}.")


def lock_key(database_name: str, scope: str) -> int:
    """The advisory lock key of a database for one scope (backups and restores, or verifications)."""
    return int.from_bytes(hashlib.sha256(f"{scope}:{database_name}".encode()).digest()[:8], "big", signed=True)
