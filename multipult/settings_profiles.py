"""Which settings module a `manage.py` / `cli.py` command runs with.

The backup, restore and WAL commands run with `multipult.settings_ops`: the same configuration
without the apps only the web process uses (admin, GraphQL, celery-beat's models…). They run from
cron and from PostgreSQL's archive_command (once per WAL segment), where loading those apps was
~0.5 s of every run: more than a third of a whole backup of a 1M-row database.

Kept free of Django and settings imports: it is read before settings are chosen.
"""

from __future__ import annotations

import atexit
import gc
import os

DEFAULT_SETTINGS = "multipult.settings"
OPS_SETTINGS = "multipult.settings_ops"

OPS_COMMANDS = frozenset(
    {
        "archive_wal",
        "backup_advanced",
        "backup_db",
        "list_backups",
        "restore_db",
        "restore_wal",
        "verify_backup",
    }
)


def settings_module_for(command: str, current: str | None) -> str:
    """The settings module for `command`; an explicitly chosen module other than ours is kept."""
    if current and current not in (DEFAULT_SETTINGS, OPS_SETTINGS):
        return current
    return OPS_SETTINGS if command.replace("-", "_") in OPS_COMMANDS else DEFAULT_SETTINGS


def select_settings(argv: list[str]) -> None:
    """Sets DJANGO_SETTINGS_MODULE for the command named in argv[1] (before Django is set up)."""
    command = argv[1] if len(argv) > 1 else ""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module_for(command, os.environ.get("DJANGO_SETTINGS_MODULE"))


def prepare_command_process(argv: list[str]) -> None:
    """What manage.py and cli.py do first: choose the settings, and skip the exit-time collection."""
    # At exit, skip the interpreter's last garbage collection over every loaded module (~0.1 s of
    # each command's wall time); the process is ending, so nothing needs those cycles freed.
    atexit.register(gc.freeze)
    select_settings(argv)  # the backup/restore/WAL commands start without the web-only apps
