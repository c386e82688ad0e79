"""Guards that CI enforces on every change: migrations match the models and the code is lint-clean."""

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from tests.paths import ROOT


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    # --check exits non-zero (SystemExit) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
