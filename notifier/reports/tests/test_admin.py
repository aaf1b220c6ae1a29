"""The reports in the console: listed, never edited there."""

from datetime import date

import pytest

from notifier.reports.models import Report
from notifier.reports.schedule import day_bounds
from notifier.reports.tests.support import ZONE

pytestmark = pytest.mark.django_db
DAY = date(2026, 6, 10)


def test_the_console_lists_the_reports_read_only(admin_client):
    Report.objects.create(
        date=DAY,
        status="failed",
        reason="SMTPDataError: (451, busy)",
        due_at=day_bounds(DAY, ZONE)[1],
    )
    page = admin_client.get("/admin/reports/report/")
    assert page.status_code == 200
    assert b"SMTPDataError: (451, busy)" in page.content
    assert admin_client.get("/admin/reports/report/add/").status_code == 403
