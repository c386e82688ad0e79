"""Snapshot admin: list, and rollback through the typed confirmation page (snapshot_rollback on
the real PostgreSQL); the same permission rule as a restore."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test import Client
from django.urls import reverse

from dbops.models import Snapshot
from dbops.services.datamigration.snapshots import snapshot_create
from multipult.core.models import Concept

# Not transactional on purpose: the snapshot's copy tables vanish with the test's transaction.
pytestmark = pytest.mark.django_db


@pytest.fixture
def concepts_snapshot(db):
    Concept.objects.bulk_create([Concept(code=f"C{i}", name=f"concept {i}") for i in range(5)])
    return snapshot_create(entities=["concepts"], reason="before a risky import")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rollback_url(snapshot) -> str:
    # The admin's own quoting: a snapshot id taken at 22:xx holds "_22", which unquotes to a double quote.
    return reverse("admin:dbops_snapshot_rollback", args=[quote(snapshot.pk)])


def test_snapshot_list_and_detail(superuser, concepts_snapshot):
    client = logged_in(superuser)

    listing = client.get(reverse("admin:dbops_snapshot_changelist")).content.decode()
    detail = client.get(reverse("admin:dbops_snapshot_change", args=[quote(concepts_snapshot.pk)])).content.decode()

    assert concepts_snapshot.pk in listing and "before a risky import" in listing and "core_concept" in listing
    assert 'id="rollback-link"' in detail


def test_rollback_through_the_confirmation_page(superuser, concepts_snapshot):
    Concept.objects.filter(code="C0").delete()
    Concept.objects.create(code="NEW", name="made after the snapshot")
    client = logged_in(superuser)

    page = client.get(rollback_url(concepts_snapshot)).content.decode()
    assert "Every row of table(s) core_concept" in page and 'id="safety-note"' in page
    refused = client.post(rollback_url(concepts_snapshot), {"typed_name": "nope"})
    assert "That is not the database name." in refused.content.decode()
    assert Concept.objects.filter(code="NEW").exists()

    response = client.post(rollback_url(concepts_snapshot), {"typed_name": connection.settings_dict["NAME"]})

    assert response.status_code == 302
    assert sorted(Concept.objects.values_list("code", flat=True)) == [f"C{i}" for i in range(5)]
    outcome = client.get(response["Location"]).content.decode()
    assert f"Rolled back to {concepts_snapshot.pk}: core_concept (5 rows)" in outcome
    assert Snapshot.objects.get(pk=concepts_snapshot.pk).status == Snapshot.Status.ROLLED_BACK


def test_staff_without_permission_gets_403(staff_user, concepts_snapshot):
    client = logged_in(staff_user)

    assert client.get(reverse("admin:dbops_snapshot_changelist")).status_code == 200
    assert client.get(rollback_url(concepts_snapshot)).status_code == 403
    response = client.post(rollback_url(concepts_snapshot), {"typed_name": connection.settings_dict["NAME"]})
    assert response.status_code == 403
