"""show_config: the effective configuration and where each value came from; secrets masked."""

from __future__ import annotations

from dataclasses import asdict

from dbops.management.base import DbopsCommand
from dbops.management.output import write_json
from multipult.core.services.configuration import config_show


class Command(DbopsCommand):
    help = "Shows every setting read from the environment: its effective value, its source (env or default)."
    requires_system_checks = []
    recovers_leftovers = False  # shows settings only; works without any server

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")

    def handle(self, *args, **options):
        entries = config_show()
        if options["json"]:
            write_json(self.stdout, [asdict(entry) for entry in entries])
            return
        width = max(len(entry.name) for entry in entries)
        by_group: dict[str, list] = {}  # in the order each group first appears in multipult/config.py
        for entry in entries:
            by_group.setdefault(entry.group, []).append(entry)
        for group, members in by_group.items():
            self.stdout.write(self.style.MIGRATE_HEADING(f"[{group}]"))
            for entry in members:
                value = entry.display if entry.display != "" else "(unset)"
                self.stdout.write(f"  {entry.name:<{width}}  {value}  ({entry.source})")
