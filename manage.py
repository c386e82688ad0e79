#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import sys


def main() -> None:
    from multipult.settings_profiles import prepare_command_process

    prepare_command_process(sys.argv)
    from multipult.config import ConfigError

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        from multipult.core.management.standalone import COMMANDS, run_without_settings

        if sys.argv[1:2] and sys.argv[1] in COMMANDS:  # these two explain a bad environment themselves
            sys.exit(run_without_settings(sys.argv))
        # A bad environment variable: one readable line, not a traceback from settings import.
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
