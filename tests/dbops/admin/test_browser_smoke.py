"""The browser harness itself: Chromium starts, the live server answers, a superuser logs in."""

import pytest

from tests.dbops.admin.conftest import admin_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_superuser_logs_in_and_sees_the_admin_index(page, live_server, superuser):
    admin_login(page, live_server, superuser)

    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME")
    assert page.get_by_role("link", name="Backup records").count() == 1
