"""Mail settings from the environment: a real SMTP server on loopback (aiosmtpd) receives the failure
notification of a failing backup task; a dead mail server is logged and bounded by EMAIL_TIMEOUT;
without EMAIL_HOST nothing goes over the network; the SMTP password never shows."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from django.core import mail
from django.db import connections

from dbops import tasks
from dbops.exceptions import DbopsError
from dbops.models import TaskRun
from dbops.services.ops.notifications import failure_notify
from multipult.core.services.configuration import config_show, config_validate
from tests.dbops import commandline
from tests.ports import unused_port

PASSWORD = "smtp-pa55word-never-shown"

pytestmark = pytest.mark.django_db


class Inbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class Authenticator:
    def __init__(self) -> None:
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data.login.decode())
        ok = auth_data.login == b"dbops" and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server():
    inbox, authenticator = Inbox(), Authenticator()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=unused_port(), authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    inbox.port, inbox.authenticator = controller.port, authenticator
    yield inbox
    controller.stop()


@pytest.fixture
def smtp_settings(settings):
    """The settings multipult.settings derives from EMAIL_HOST & co. (pytest-django swaps in locmem)."""

    def apply(**overrides):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "127.0.0.1", "dbops", PASSWORD
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 5.0
        settings.DEFAULT_FROM_EMAIL = "dbops-alerts@example.org"
        settings.ADMINS = [("Ops", "ops@example.com")]
        settings.BACKUP_NOTIFY_EMAILS = ["backups@example.com"]
        settings.BACKUP_ENCRYPTION_KEY = None  # so run_backup(encrypt=True) fails without dumping anything
        for name, value in overrides.items():
            setattr(settings, name, value)
        return settings

    return apply


def failing_backup(task_id: str) -> DbopsError:
    with pytest.raises(DbopsError) as excinfo:
        tasks.run_backup.apply(kwargs={"encrypt": True, "tag": "mail-test"}, task_id=task_id)
    return excinfo.value


def test_a_failing_backup_task_is_mailed_through_the_configured_smtp_server(smtp_server, smtp_settings, caplog):
    smtp_settings(EMAIL_PORT=smtp_server.port)
    error = failing_backup("mail-backup-fails")

    (envelope,) = smtp_server.envelopes
    message = message_from_bytes(envelope.content)
    assert envelope.mail_from == "dbops-alerts@example.org" and message["From"] == "dbops-alerts@example.org"
    assert envelope.rcpt_tos == ["ops@example.com", "backups@example.com"]
    assert "dbops.tasks.run_backup failed" in message["Subject"]
    assert str(error) in message.get_payload(decode=True).decode()
    assert smtp_server.authenticator.logins == ["dbops"]  # authenticated with EMAIL_HOST_USER
    assert TaskRun.objects.get(task_id="mail-backup-fails").status == TaskRun.Status.FAILED
    assert PASSWORD not in caplog.text


def test_wrong_smtp_password_is_logged_without_the_password(smtp_server, smtp_settings, caplog):
    smtp_settings(EMAIL_PORT=smtp_server.port, EMAIL_HOST_PASSWORD=PASSWORD + "-wrong")
    assert failure_notify(subject="backup failed", body="details") is False
    assert smtp_server.envelopes == []
    assert "could not mail the failure notification" in caplog.text and "SMTPAuthenticationError" in caplog.text
    assert PASSWORD not in caplog.text


@pytest.fixture
def silent_server():
    """Accepts TCP connections and never says a word: the way a hung mail server looks to smtplib."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_a_mail_server_that_never_answers_costs_at_most_email_timeout(silent_server, smtp_settings, caplog):
    smtp_settings(EMAIL_PORT=silent_server, EMAIL_TIMEOUT=0.5)
    outcome = {}

    def run():
        try:
            failing_backup("mail-server-hangs")
        except BaseException as exc:  # noqa: BLE001 (reported to the main thread)
            outcome["error"] = exc
        else:
            outcome["done"] = True
        finally:
            connections.close_all()  # this thread's own: an open one would block later tests' CREATE DATABASE

    # The worker thread is a guard so that a regression fails the test instead of hanging the suite;
    # the proof the timeout applied is the logged TimeoutError, not a stopwatch.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the notification hung on a silent mail server"
    assert outcome == {"done": True}, outcome
    assert "could not mail the failure notification" in caplog.text
    assert "TimeoutError" in caplog.text or "timed out" in caplog.text
    # The task's own outcome is what it was: failed, with its own error, not the mail error.
    task_run = TaskRun.objects.get(task_id="mail-server-hangs")
    assert task_run.status == TaskRun.Status.FAILED and "timed out" not in task_run.error


def test_a_refused_connection_leaves_the_task_record_as_it_was(smtp_settings, caplog):
    smtp_settings(EMAIL_PORT=unused_port())  # nothing listens there
    failing_backup("mail-refused")
    task_run = TaskRun.objects.get(task_id="mail-refused")
    assert task_run.status == TaskRun.Status.FAILED and "ConnectionRefused" not in task_run.error
    assert "ConnectionRefusedError" in caplog.text


def test_without_email_host_nothing_is_sent_and_no_connection_is_attempted(settings, caplog, monkeypatch):
    settings.EMAIL_BACKEND = "dbops.mail.LogOnlyEmailBackend"
    settings.BACKUP_NOTIFY_EMAILS = ["backups@example.com"]

    def no_network(*args, **kwargs):
        raise AssertionError("an SMTP connection was attempted")

    monkeypatch.setattr("smtplib.SMTP.connect", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    caplog.set_level("INFO")
    assert failure_notify(subject="backup failed", body="details") is False
    assert "backup failed: details" in caplog.text
    assert "mail not sent (EMAIL_HOST is unset)" in caplog.text and "backups@example.com" in caplog.text
    assert mail.outbox == []


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """A child `manage.py ARGS` with no EMAIL_* variable but those given."""
    without_mail = {name: None for name in os.environ if name.startswith("EMAIL_")}
    return commandline.run_manage(*args, env=without_mail | env)


SETTINGS_PROBE = (
    "from django.conf import settings as s; import json; print(json.dumps([s.EMAIL_BACKEND, s.EMAIL_HOST, "
    "s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_USE_TLS, s.EMAIL_USE_SSL, s.EMAIL_TIMEOUT, s.DEFAULT_FROM_EMAIL, "
    "s.SERVER_EMAIL, s.EMAIL_HOST_PASSWORD == 'pw-from-env']))"
)


def test_the_environment_sets_django_mail_settings():
    result = run_manage(
        "shell",
        "-c",
        SETTINGS_PROBE,
        EMAIL_HOST="smtp.example.org",
        EMAIL_PORT="587",
        EMAIL_HOST_USER="dbops",
        EMAIL_HOST_PASSWORD="pw-from-env",
        EMAIL_USE_TLS="true",
        EMAIL_TIMEOUT="3.5",
        DEFAULT_FROM_EMAIL="alerts@example.org",
        SERVER_EMAIL="server@example.org",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.org",
        587,
        "dbops",
        True,
        False,
        3.5,
        "alerts@example.org",
        "server@example.org",
        True,
    ]
    defaults = run_manage("shell", "-c", SETTINGS_PROBE)
    assert defaults.returncode == 0, defaults.stderr
    backend, *_rest, timeout, _from, _server, _pw = json.loads(defaults.stdout.strip().splitlines()[-1])
    assert backend == "dbops.mail.LogOnlyEmailBackend" and timeout == 10.0


def test_tls_and_ssl_together_is_one_readable_config_error():
    result = run_manage("check", EMAIL_USE_TLS="true", EMAIL_USE_SSL="true")
    assert result.returncode != 0
    assert "EMAIL_USE_SSL" in result.stderr and "EMAIL_USE_TLS" in result.stderr
    assert "Traceback" not in result.stderr
    problems = config_validate(environ={"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "yes"})
    assert [p.name for p in problems if p.name.startswith("EMAIL")] == ["EMAIL_USE_SSL"]


@pytest.mark.parametrize(
    ("name", "raw"),
    [("EMAIL_PORT", "smtp"), ("EMAIL_PORT", "70000"), ("EMAIL_TIMEOUT", "0"), ("DEFAULT_FROM_EMAIL", "nobody")],
)
def test_bad_mail_values_are_named_by_validate_config(name, raw):
    problems = config_validate(environ={name: raw})
    assert name in [problem.name for problem in problems]


def test_smtp_password_is_masked_by_show_config_and_validate_config():
    entries = {entry.name: entry for entry in config_show(environ={"EMAIL_HOST_PASSWORD": PASSWORD})}
    assert entries["EMAIL_HOST_PASSWORD"].secret and entries["EMAIL_HOST_PASSWORD"].display == "********"
    result = run_manage("show_config", "--json", EMAIL_HOST_PASSWORD=PASSWORD, EMAIL_HOST="127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    shown = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert shown["EMAIL_HOST_PASSWORD"]["display"] == "********" and shown["EMAIL_HOST"]["display"] == "127.0.0.1"
    validated = run_manage("validate_config", "--json", EMAIL_HOST_PASSWORD=PASSWORD, EMAIL_PORT="x")
    assert PASSWORD not in validated.stdout + validated.stderr and "EMAIL_PORT" in validated.stdout


def mail_env(port: int, **extra: str) -> dict[str, str]:
    return {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port), "EMAIL_HOST_USER": "dbops"} | extra


def mail_problems(environ: dict[str, str]) -> list:
    from multipult.config import resolve_all
    from multipult.core.services.configuration import _check_mail

    values, problems = resolve_all(environ)
    assert problems == []
    return _check_mail(values)


def test_validate_config_deep_logs_in_to_the_mail_server_without_sending(smtp_server):
    assert mail_problems(mail_env(smtp_server.port, EMAIL_HOST_PASSWORD=PASSWORD)) == []
    assert smtp_server.authenticator.logins == ["dbops"] and smtp_server.envelopes == []


def test_validate_config_deep_names_a_wrong_password_or_dead_server_without_the_password(smtp_server):
    (problem,) = mail_problems(mail_env(smtp_server.port, EMAIL_HOST_PASSWORD=PASSWORD + "-wrong"))
    assert problem.name == "mail" and "SMTPAuthenticationError" in problem.message
    assert PASSWORD not in problem.message
    (problem,) = mail_problems(mail_env(unused_port(), EMAIL_TIMEOUT="1"))
    assert problem.name == "mail" and "ConnectionRefusedError" in problem.message
    assert mail_problems({}) == []  # no EMAIL_HOST: nothing to reach
    result = run_manage(
        "validate_config",
        "--deep",
        "--json",
        **mail_env(smtp_server.port, EMAIL_HOST_PASSWORD=PASSWORD + "-wrong"),
    )
    assert result.returncode == 1 and PASSWORD not in result.stdout + result.stderr
    assert "mail" in [problem["name"] for problem in json.loads(result.stdout)["problems"]]
