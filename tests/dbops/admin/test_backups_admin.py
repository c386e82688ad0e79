"""BackupRecord admin through Django's test client: list, detail, permissions and the typed
restore confirmation (the parts that do not need the backup engine to run)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dbops.models import BackupRecord, RestoreRecord
from tests.dbops.admin.conftest import make_backup_record

pytestmark = pytest.mark.django_db


def restore_url(backup_record) -> str:
    return reverse("admin:dbops_backuprecord_restore", args=[backup_record.pk])


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_changelist_shows_status_human_size_age_and_flags(superuser):
    three_hours_ago = timezone.now() - timedelta(hours=3)
    make_backup_record(
        size_bytes=5 * 1024 * 1024,
        uploaded_to_s3=True,
        local_presence="present",
        s3_presence="present",
        started_at=three_hours_ago,
        finished_at=three_hours_ago,
    )
    make_backup_record(status=BackupRecord.Status.FAILED, size_bytes=None, error="pg_dump: connection refused")

    response = logged_in(superuser).get(reverse("admin:dbops_backuprecord_changelist"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "5.0\xa0MB" in html
    assert "backup-status-succeeded" in html and "backup-status-failed" in html
    assert "3\xa0hours ago" in html
    assert ">local+s3<" in html
    # the filters staff use most
    for filter_title in ("By status", "By compression", "By verification status", "By s3 presence"):
        assert filter_title in html
    assert 'id="backup-now"' in html


def test_changelist_shows_what_staff_act_on_and_leaves_the_rest_to_the_record(superuser):
    make_backup_record(local_presence="present", s3_presence="damaged")

    response = logged_in(superuser).get(reverse("admin:dbops_backuprecord_changelist"))

    headers = [header.strip() for header in response.context["cl"].list_display]
    assert headers == [
        "action_checkbox", "id", "status_and_error", "when", "age", "database_alias", "size", "where", "verified",
        "short_tag", "pinned",  # pinned: what retention will never delete
    ]  # fmt: skip
    assert ">local+s3!<" in response.content.decode()  # the S3 copy was found damaged


def test_changelist_shows_the_error_of_a_failed_backup(superuser):
    make_backup_record(
        status=BackupRecord.Status.FAILED,
        size_bytes=None,
        error="Cannot write /srv/backups/x.partial: No space left on device.\nTraceback line",
    )

    html = logged_in(superuser).get(reverse("admin:dbops_backuprecord_changelist")).content.decode()

    assert '<div class="backup-list-error"' in html
    assert ">Cannot write /srv/backups/x.partial: No space left on device.</div>" in html


def test_deleted_backups_are_hidden_until_the_filter_asks_for_them(superuser):
    make_backup_record(tag="kept-one")
    make_backup_record(status=BackupRecord.Status.DELETED, tag="gone-one")
    client = logged_in(superuser)
    changelist = reverse("admin:dbops_backuprecord_changelist")

    by_default = client.get(changelist).content.decode()
    everything = client.get(changelist + "?status=all").content.decode()
    deleted_only = client.get(changelist + "?status=deleted").content.decode()

    assert "kept-one" in by_default and "gone-one" not in by_default
    assert "All but deleted" in by_default
    assert "kept-one" in everything and "gone-one" in everything
    assert "gone-one" in deleted_only and "kept-one" not in deleted_only


def test_long_tags_are_cut_in_the_list_and_whole_in_the_tooltip(superuser):
    long_tag = "before-the-big-migration-of-the-billing-schema-2026"
    make_backup_record(tag=long_tag)

    html = logged_in(superuser).get(reverse("admin:dbops_backuprecord_changelist")).content.decode()

    assert f'<span title="{long_tag}">{long_tag[:23]}…</span>' in html


def test_changelist_filters_by_status(superuser):
    make_backup_record(tag="good-one")
    make_backup_record(status=BackupRecord.Status.FAILED, tag="bad-one")

    response = logged_in(superuser).get(reverse("admin:dbops_backuprecord_changelist") + "?status__exact=failed")

    html = response.content.decode()
    assert "bad-one" in html and "good-one" not in html


def test_detail_shows_checksum_row_counts_and_error(superuser):
    backup_record = make_backup_record(
        status=BackupRecord.Status.FAILED, error="pg_dump: error: permission denied for table secret"
    )

    response = logged_in(superuser).get(reverse("admin:dbops_backuprecord_change", args=[backup_record.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "ab" * 32 in html
    assert "<td>core_concept</td><td style='text-align:right'>120</td>" in html
    assert "permission denied for table secret" in html
    # a failed backup offers no restore
    assert 'id="restore-link"' not in html


def test_catalog_rows_cannot_be_added_edited_or_deleted_by_hand(superuser):
    backup_record = make_backup_record()
    client = logged_in(superuser)

    assert client.get(reverse("admin:dbops_backuprecord_add")).status_code == 403
    assert client.post(reverse("admin:dbops_backuprecord_delete", args=[backup_record.pk])).status_code == 403
    response = client.post(reverse("admin:dbops_backuprecord_change", args=[backup_record.pk]), {"tag": "edited"})
    assert response.status_code == 403
    backup_record.refresh_from_db()
    assert backup_record.tag == ""


def test_staff_without_permission_gets_403_on_restore_page_and_post(staff_user):
    backup_record = make_backup_record()
    client = logged_in(staff_user)

    # they may browse the catalog...
    assert client.get(reverse("admin:dbops_backuprecord_changelist")).status_code == 200
    detail = client.get(reverse("admin:dbops_backuprecord_change", args=[backup_record.pk]))
    assert detail.status_code == 200 and 'id="restore-link"' not in detail.content.decode()
    # ...but neither see nor post the restore
    assert client.get(restore_url(backup_record)).status_code == 403
    typed = connection.settings_dict["NAME"]
    assert client.post(restore_url(backup_record), {"typed_name": typed}).status_code == 403
    changelist = client.get(reverse("admin:dbops_backuprecord_changelist")).content.decode()
    assert "restore_selected" not in changelist
    assert 'id="backup-now"' not in changelist


def test_anonymous_is_sent_to_login(db):
    backup_record = make_backup_record()

    response = Client().get(restore_url(backup_record))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("who", ["superuser", "restorer"])
def test_confirmation_page_says_what_is_overwritten(who, request):
    user = request.getfixturevalue(who)
    backup_record = make_backup_record(tag="before-migration")

    response = logged_in(user).get(restore_url(backup_record))

    assert response.status_code == 200
    html = response.content.decode()
    database_name = connection.settings_dict["NAME"]
    assert f'<td id="target-name">{database_name}</td>' in html
    assert '<td id="target-engine">postgresql</td>' in html
    assert "3.0\xa0MB" in html
    assert "2 tables, 127 rows" in html
    assert 'id="safety-backup"' in html and "safety backup" in html
    assert f'<code class="expected">{database_name}</code>' in html
    assert 'name="csrfmiddlewaretoken"' in html


@pytest.mark.django_db(transaction=True)  # the connector counts on a connection of its own: rows must be committed
def test_confirmation_page_shows_each_tables_rows_now_beside_the_backups(superuser, django_user_model):
    from multipult.core.models import Concept

    backup_record = make_backup_record(row_counts={"core_concept": 120, "core_user": 7, "core_gone": 3})
    Concept.objects.create(name="only one now", created_by=superuser)

    response = logged_in(superuser).get(restore_url(backup_record))

    assert response.context["page"].table_rows == [
        ("core_concept", 120, 1),
        ("core_gone", 3, "—"),  # the database has no such table now
        ("core_user", 7, django_user_model.objects.count()),
    ]
    html = response.content.decode()
    assert '<td>core_concept</td><td class="rows">120</td><td class="rows">1</td>' in html
    # the submit is drawn as Django's delete confirmation draws its own
    assert "delete-confirmation" in html and '<input type="submit" id="confirm-submit"' in html


def test_wrong_typed_name_is_refused_and_nothing_runs(superuser):
    backup_record = make_backup_record()
    records_before = list(BackupRecord.objects.values_list("pk", "status", "verification_status"))

    response = logged_in(superuser).post(restore_url(backup_record), {"typed_name": "production"})

    assert response.status_code == 200
    assert "That is not the database name." in response.content.decode()
    assert list(BackupRecord.objects.values_list("pk", "status", "verification_status")) == records_before


def test_restore_post_without_csrf_token_is_forbidden(superuser):
    backup_record = make_backup_record()
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)

    response = client.post(restore_url(backup_record), {"typed_name": connection.settings_dict["NAME"]})

    assert response.status_code == 403
    assert b"CSRF" in response.content


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"status": BackupRecord.Status.FAILED}, "only a succeeded backup can be restored"),
        ({"status": BackupRecord.Status.DELETED}, "only a succeeded backup can be restored"),
        ({"engine": "sqlite"}, "is a sqlite backup; database"),
    ],
)
def test_unrestorable_backup_shows_the_problem_and_no_form(superuser, fields, problem):
    backup_record = make_backup_record(**fields)
    client = logged_in(superuser)

    page = client.get(restore_url(backup_record)).content.decode()
    assert problem in page
    assert 'id="typed-confirmation-form"' not in page
    # no plan of a restore that will not run, and no promise of a safety backup
    assert 'id="overwritten"' not in page and "Would restore" not in page
    assert 'id="safety-backup"' not in page
    # posting anyway changes nothing
    response = client.post(restore_url(backup_record), {"typed_name": connection.settings_dict["NAME"]})
    assert response.status_code == 200 and problem in response.content.decode()


def test_backup_now_endpoint_only_accepts_post(superuser, staff_user):
    url = reverse("admin:dbops_backuprecord_backup_now")

    assert logged_in(superuser).get(url).status_code == 405
    assert logged_in(staff_user).post(url).status_code == 403


def test_changelist_query_count_does_not_grow_with_rows(superuser):
    from tests.queries import queries_on_every_database

    client = logged_in(superuser)
    url = reverse("admin:dbops_backuprecord_changelist")
    make_backup_record()
    with queries_on_every_database() as few:
        assert client.get(url).status_code == 200
    for _ in range(30):
        make_backup_record()
    with queries_on_every_database() as many:
        assert client.get(url).status_code == 200

    assert len(few.contexts[-1]) > 0 and len(many) <= len(few)  # the catalog's own queries are counted


def test_restore_action_leads_to_the_confirmation_page_for_exactly_one_backup(superuser):
    first, second = make_backup_record(), make_backup_record()
    client = logged_in(superuser)
    url = reverse("admin:dbops_backuprecord_changelist")

    one = client.post(url, {"action": "restore_selected", "_selected_action": [first.pk]})
    two = client.post(url, {"action": "restore_selected", "_selected_action": [first.pk, second.pk]}, follow=True)

    assert one.status_code == 302 and one["Location"] == restore_url(first)
    assert "Select exactly one backup to restore from." in two.content.decode()


def test_a_backups_page_lists_its_restores_from_the_restore_records(superuser):
    # The rows backup_restore writes: one that failed, one that succeeded with a safety backup.
    backup_record = make_backup_record(tag="restored-often")
    safety = make_backup_record(kind=BackupRecord.Kind.SAFETY)
    other = make_backup_record(tag="never-restored")
    started = timezone.now() - timedelta(hours=1)
    common = {"backup": backup_record, "database_alias": "default", "database_name": "multipult", "source": "x"}
    RestoreRecord.objects.create(
        **common, status="failed", started_at=started, error="Backup #1 is damaged: checksum mismatch\nmore"
    )
    RestoreRecord.objects.create(
        **common,
        status="succeeded",
        started_at=started + timedelta(minutes=5),
        safety_backup=safety,
        previous_database="multipult_pre_restore_20261201120000",
        triggered_by="admin",
        triggered_by_user="ops-anna",
    )

    client = logged_in(superuser)
    html = client.get(reverse("admin:dbops_backuprecord_change", args=[backup_record.pk])).content.decode()

    log = html[html.index('class="restore-log"') :]
    assert log.index("Succeeded") < log.index("Failed: Backup #1 is damaged: checksum mismatch")  # newest first
    assert "more" not in log[: log.index("</table>")]  # the first line of the error only
    assert f"#{safety.pk}" in log and "multipult_pre_restore_20261201120000" in log and "ops-anna (admin)" in log
    assert "never restored" in client.get(reverse("admin:dbops_backuprecord_change", args=[other.pk])).content.decode()
    # Every restore also has its own read-only history page.
    listing = client.get(reverse("admin:dbops_restorerecord_changelist")).content.decode()
    assert listing.count('class="field-status"') == 2
    assert client.get(reverse("admin:dbops_restorerecord_add")).status_code == 403
