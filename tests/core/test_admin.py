"""Every domain model has working admin pages, and their change lists don't grow queries per row."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from multipult.core import models as core_models
from multipult.core.services.seeding import seed_create

DOMAIN_MODELS = [
    core_models.Role,
    core_models.User,
    core_models.Concept,
    core_models.Dictionary,
    core_models.DictionaryEntry,
    core_models.StoredFile,
    core_models.AuditLog,
]


@pytest.fixture
def staff_client(client, django_user_model):
    superuser = django_user_model.objects.create_superuser("admin-test", "admin@example.com", "pw-admin-test")
    client.force_login(superuser)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("model", DOMAIN_MODELS, ids=lambda model: model.__name__)
def test_every_domain_model_is_registered_and_its_pages_render(staff_client, model):
    assert admin.site.is_registered(model)
    seed_create(scale=0.2, seed=7, using="default")
    instance = model.objects.order_by("pk").first()
    assert instance is not None, "seed_data creates rows for every domain model"
    opts = model._meta

    changelist = staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    change = staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[instance.pk]))
    add = staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))

    assert (changelist.status_code, change.status_code, add.status_code) == (200, 200, 200)


@pytest.mark.django_db
@pytest.mark.parametrize("model", DOMAIN_MODELS, ids=lambda model: model.__name__)
def test_changelist_query_count_does_not_grow_with_rows(staff_client, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    seed_create(scale=0.05, seed=1, using="default")
    with CaptureQueriesContext(connection) as small:
        assert staff_client.get(url).status_code == 200
    seed_create(scale=0.5, seed=2, using="default")
    with CaptureQueriesContext(connection) as large:
        assert staff_client.get(url).status_code == 200
    assert len(large) <= len(small), [query["sql"] for query in large.captured_queries]
