"""Snapshot rollback in headless Chromium through the same typed confirmation page."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote

from dbops.services.datamigration.snapshots import snapshot_create, snapshot_discard
from multipult.core.models import Concept
from tests.dbops.admin.conftest import admin_login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def concepts_snapshot(transactional_db):
    Concept.objects.bulk_create([Concept(code=f"C{i}", name=f"concept {i}") for i in range(3)])
    snapshot = snapshot_create(entities=["concepts"], reason="before the browser test's import")
    yield snapshot
    snapshot_discard(snapshot_id=snapshot.id)  # copy tables are not models: the flush would leave them


def test_rollback_to_a_snapshot(page, live_server, superuser, concepts_snapshot):
    Concept.objects.filter(code="C1").delete()
    admin_login(page, live_server, superuser)

    page.goto(f"{live_server.url}/admin/dbops/snapshot/{quote(concepts_snapshot.pk)}/change/")
    page.click("#rollback-link")
    assert "core_concept" in page.locator("#overwritten").inner_text()
    assert "No safety backup is taken" in page.locator("#safety-note").inner_text()
    page.fill("#id_typed_name", page.locator("#target-name").inner_text())
    screenshot(page, "snapshot-rollback-confirmation")
    page.click("#confirm-submit")

    assert f"Rolled back to {concepts_snapshot.pk}" in page.locator("ul.messagelist").inner_text()
    assert sorted(Concept.objects.values_list("code", flat=True)) == ["C0", "C1", "C2"]
