#!/usr/bin/env python
"""The operators' front: `python cli.py create-user --username admin --email a@b.c`.

Every management command Django knows (discovered at run time, so new commands appear without
touching this file) is available under its hyphenated name; flags may be spelled with hyphens or
underscores. `python cli.py --help` lists the commands, `python cli.py COMMAND --help` its options.
The command runs exactly as `python manage.py command_name …` would (same output and exit status).
"""

from __future__ import annotations

import difflib
import os
import signal
import sys
import textwrap
from collections import defaultdict

PROJECT_APPS = ("dbops", "multipult.core")  # listed first in --help


def hyphenated(name: str) -> str:
    return name.replace("_", "-")


def command_names() -> dict[str, str]:
    """{hyphenated name: app} for every management command of the installed apps."""
    from django.core.management import get_commands

    return {hyphenated(name): app for name, app in get_commands().items()}


def print_commands(stream) -> None:
    from django.core.management import load_command_class

    by_app: dict[str, list[str]] = defaultdict(list)
    for name, app in command_names().items():
        by_app[app].append(name)
    apps = [app for app in PROJECT_APPS if app in by_app] + sorted(set(by_app) - set(PROJECT_APPS))
    stream.write("usage: python cli.py COMMAND [OPTIONS]   (python cli.py COMMAND --help for its options)\n")
    for app in apps:
        stream.write(f"\n[{app}]\n")
        for name in sorted(by_app[app]):
            summary = ""
            if app in PROJECT_APPS:
                help_text = load_command_class(app, name.replace("-", "_")).help or ""
                summary = textwrap.shorten(help_text.strip().split(". ")[0].rstrip("."), width=90, placeholder="…")
            stream.write(f"  {name:<28} {summary}\n".rstrip() + "\n")


def normalize_flags(command, prog: str, name: str, args: list[str]) -> list[str]:
    """Spells each `--flag` the way the command's parser declares it (hyphens or underscores)."""
    known = set(command.create_parser(prog, name)._option_string_actions)
    normalized = []
    for arg in args:
        if arg == "--":
            normalized.extend(args[len(normalized) :])
            break
        if arg.startswith("--") and len(arg) > 2:
            flag, sep, value = arg.partition("=")
            if flag not in known:
                for candidate in (flag.replace("_", "-"), "--" + flag[2:].replace("-", "_")):
                    if candidate in known:
                        flag = candidate
                        break
            arg = flag + sep + value
        normalized.append(arg)
    return normalized


def main(argv: list[str]) -> int:
    from multipult.settings_profiles import prepare_command_process

    prepare_command_process(argv)
    from multipult.config import ConfigError

    name = argv[1] if len(argv) > 1 else "--help"
    command_name = name.replace("-", "_")
    try:
        import django

        django.setup()
    except ConfigError as exc:
        from multipult.core.management.standalone import COMMANDS, run_without_settings

        if command_name in COMMANDS:  # these two explain a bad environment themselves
            return run_without_settings([argv[0], command_name, *argv[2:]])
        sys.stderr.write(f"Configuration error: {exc}\n")
        return 2

    if name in {"-h", "--help", "help"}:
        print_commands(sys.stdout)
        return 0
    commands = command_names()
    if hyphenated(name) not in commands:
        suggestions = difflib.get_close_matches(hyphenated(name), commands, n=3)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        sys.stderr.write(f"Unknown command {name!r}.{hint} See: python cli.py --help\n")
        return 2

    from django.core.management import load_command_class

    command = load_command_class(commands[hyphenated(name)], command_name)
    prog = os.path.basename(argv[0])
    args = normalize_flags(command, prog, hyphenated(name), argv[2:])
    # run_from_argv parses, runs, prints CommandError as one line and exits non-zero, like manage.py.
    command.run_from_argv([prog, hyphenated(name), *args])
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `python cli.py --help | head` ends quietly
    sys.exit(main(sys.argv))
