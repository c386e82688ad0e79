"""Runs validate_config / show_config when a bad environment variable stops the settings from loading.

manage.py calls `run_without_settings` on a ConfigError for these two commands only: they read the
environment through multipult.config, not through Django settings, so they can still say what is wrong.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from django.core.management.base import CommandError

COMMANDS = ("validate_config", "show_config")


def run_without_settings(argv: list[str]) -> int:
    name = argv[1]
    command = import_module(f"multipult.core.management.commands.{name}").Command()
    parser = argparse.ArgumentParser(prog=f"manage.py {name}", description=command.help)
    command.add_arguments(parser)
    options = vars(parser.parse_args(argv[2:]))
    try:
        command.handle(**options)
    except CommandError as exc:
        sys.stderr.write(f"CommandError: {exc}\n")
        return exc.returncode
    return 0
