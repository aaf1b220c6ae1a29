"""`manage.py send_report`: a given day's report rendered, and sent or printed; bad input is a
clear error."""

from datetime import UTC, date, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from notifier.reports.models import Report
from notifier.reports.tests.support import prepare_day

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)


def run(*args: str) -> str:
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("send_report", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def kolkata(settings):
    settings.REPORTS = {**settings.REPORTS, "TIMEZONE": "Asia/Kolkata", "RECIPIENTS": []}


def test_dry_run_prints_the_text_part_of_the_given_day(kolkata):
    prepare_day(date(2026, 6, 10))

    out = run("--date", "2026-06-10", "--dry-run")

    assert out.startswith(
        "Subject: Notifier daily report 2026-06-10: 250 sent, 5 failed, 8 expired (95.0% delivered)"
    )
    assert "Daily report, 2026-06-10" in out
    assert "<" not in out.replace("<b>news</b>", "")  # text, no markup of ours


def test_without_a_date_it_is_yesterdays_report(kolkata):
    assert "Daily report, 2026-06-11" in run("--dry-run")


def test_it_sends_to_the_addresses_given_through_the_smtp_server(kolkata, smtp):
    prepare_day(date(2026, 6, 10))

    out = run("--date", "2026-06-10", "--to", "a@example.com", "b@example.com")

    (received,) = smtp.messages()
    assert received.recipients == ["a@example.com", "b@example.com"]
    assert received.message.get_content_type() == "multipart/alternative"
    assert "sent 'Notifier daily report 2026-06-10" in out
    assert not Report.objects.exists()  # by hand: the schedule's rows are left alone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-13-01"], "expected a date as YYYY-MM-DD, got '2026-13-01'"),
        (["--date", "10.06.2026"], "expected a date as YYYY-MM-DD, got '10.06.2026'"),
        (["--date", "2026-06-12", "--dry-run"], "2026-06-12 is not over yet in Asia/Kolkata"),
        (["--to", "not-an-address"], "'not-an-address' is not an e-mail address"),
        (["--date", "2026-06-10"], "no recipients: set REPORT_RECIPIENTS or give --to ADDRESS"),
    ],
)
def test_bad_input_is_a_clear_error(kolkata, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run(*args)


def test_a_mail_server_that_is_not_there_is_a_clear_error(kolkata, smtp):
    smtp.stop()
    with pytest.raises(CommandError, match="not delivered: ConnectionRefusedError"):
        run("--date", "2026-06-10", "--to", "a@example.com")
