"""start_admin: from a fresh checkout to a logged-in admin in one command."""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from dbops.management.base import DbopsCommand

SUPERUSER_VARIABLES = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD")


class Command(DbopsCommand):
    help = (
        "Opens the admin on this machine: migrates both databases, makes sure a superuser exists (prompting "
        "on a terminal, or from DJANGO_SUPERUSER_USERNAME/EMAIL/PASSWORD), creates the default schedules and "
        "retention policy (setup_schedules), collects the static files, then serves on 127.0.0.1 and prints "
        "the admin's URL."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="Port on 127.0.0.1 (default 8000).")
        parser.add_argument(
            "--server",
            choices=["runserver", "gunicorn"],
            default="runserver",
            help="runserver (default; Django's development server) or gunicorn (as the image runs it).",
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="Do everything but serving (e.g. on deploy, before gunicorn)."
        )

    def handle(self, *args, **options):
        if not 0 < options["port"] < 65536:
            raise CommandError(f"--port {options['port']} is not a TCP port (1-65535).")
        self.stdout.write("Migrating the application and operations databases…")
        call_command("migrate", interactive=False, verbosity=0)
        superuser_name = self._superuser()
        call_command("setup_schedules", stdout=self.stdout._out)
        call_command("collectstatic", interactive=False, verbosity=0)
        url = f"http://127.0.0.1:{options['port']}/admin/"
        self.stdout.write(self.style.SUCCESS(f"The admin: {url}  (log in as {superuser_name})"))
        if options["no_serve"]:
            return
        self.stdout.flush()
        if options["server"] == "gunicorn":
            bind = f"127.0.0.1:{options['port']}"
            # exec: gunicorn takes over this process (signals, exit code) as it does in the image
            config = str(settings.BASE_DIR / "gunicorn.conf.py")
            os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--config", config, "--bind", bind])  # noqa: S606
        call_command("runserver", f"127.0.0.1:{options['port']}", use_reloader=False)

    def _superuser(self) -> str:
        """The name of an active superuser, creating one when there is none."""
        existing = get_user_model()._default_manager.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if existing is not None:
            return existing.get_username()
        if all(os.environ.get(name) for name in ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD")):
            call_command("createsuperuser", interactive=False, verbosity=0)  # reads DJANGO_SUPERUSER_*
            return os.environ["DJANGO_SUPERUSER_USERNAME"]
        if not sys.stdin.isatty():
            raise CommandError(
                "No superuser exists yet and none can be asked for here: set "
                f"{', '.join(SUPERUSER_VARIABLES)}, or run this at a terminal to be prompted."
            )
        self.stdout.write("No superuser exists yet; create one:")
        call_command("createsuperuser", interactive=True)
        created = get_user_model()._default_manager.filter(is_superuser=True, is_active=True).order_by("-pk").first()
        if created is None:
            raise CommandError("No superuser was created; the admin would have nobody to log in.")
        return created.get_username()
