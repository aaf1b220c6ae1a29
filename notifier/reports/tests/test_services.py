"""Which reports are due, claimed once each from the database, and how a delivery goes: a
real SMTP server on loopback (aiosmtpd) receives them."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from notifier.reports import tasks
from notifier.reports.models import Report, ReportClock
from notifier.reports.schedule import due_at
from notifier.reports.services import LEASE, report_attempt, reports_check
from notifier.reports.tests.conftest import SMTP_PASSWORD, report_settings
from notifier.reports.tests.support import prepare_day
from notifier.testing.logs import events, json_lines

pytestmark = pytest.mark.django_db
CONFIG = report_settings()


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def check_and_send(now: datetime, config=CONFIG) -> list[date]:
    """What the reports process does at `now`: a check, then an attempt of each due day."""
    due = reports_check(now=now, config=config)
    for day in due:
        report_attempt(day=day, now=now, config=config)
    return due


def rows() -> dict[str, tuple[str, int]]:
    return {r.date.isoformat(): (r.status, r.attempts) for r in Report.objects.order_by("date")}


def test_a_report_due_before_the_first_check_is_never_sent(smtp):
    """The first check, at 09:00, records the service's start: the report due at 08:00 that
    day belongs to the time before it; the next day's goes out at 08:00."""
    check_and_send(utc(2026, 5, 10, 9, 0))
    assert ReportClock.objects.get().first_check_at == utc(2026, 5, 10, 9, 0)
    assert (rows(), smtp.messages()) == ({}, [])

    check_and_send(utc(2026, 5, 11, 7, 59))
    assert rows() == {}
    check_and_send(utc(2026, 5, 11, 8, 0))
    check_and_send(utc(2026, 5, 11, 8, 1))

    assert rows() == {"2026-05-10": ("sent", 1)}
    (received,) = smtp.messages()
    assert received.message["Subject"].startswith("Notifier daily report 2026-05-10:")
    assert received.recipients == ["ops@example.com", "lead@example.com"]
    assert smtp.logins == ["reports"]


def test_after_a_downtime_the_last_seven_days_are_sent_and_older_ones_skipped(smtp):
    check_and_send(utc(2026, 5, 1, 12, 0))  # the service starts...
    # ...and comes back eleven days later: 1 to 10 May fell due meanwhile.
    with json_lines(secrets=[]) as log:
        due = check_and_send(utc(2026, 5, 12, 9, 0))

    assert [d.isoformat() for d in due] == [f"2026-05-{n:02}" for n in range(5, 12)]
    assert rows() == {
        **{f"2026-05-{n:02}": ("skipped", 0) for n in range(1, 5)},
        **{f"2026-05-{n:02}": ("sent", 1) for n in range(5, 12)},
    }
    assert Report.objects.get(date=date(2026, 5, 1)).reason == "fell due more than 7 days ago"
    assert len(smtp.messages()) == 7
    skipped = [e for e in events(log.lines) if e["event"] == "daily report skipped"]
    assert [e["report_date"] for e in skipped] == [f"2026-05-0{n}" for n in range(1, 5)]


def test_without_recipients_nothing_is_sent_and_the_day_says_why(smtp):
    config = report_settings(recipients=())
    check_and_send(utc(2026, 5, 1, 12, 0), config)
    check_and_send(utc(2026, 5, 2, 8, 0), config)

    assert rows() == {"2026-05-01": ("skipped", 0)}
    assert Report.objects.get().reason == "no recipients: REPORT_RECIPIENTS is empty"
    assert smtp.messages() == []


def test_checks_and_attempts_repeated_send_once(smtp):
    """Two beats, two reports processes: every check and every attempt comes twice."""
    check_and_send(utc(2026, 5, 1, 12, 0))
    now = utc(2026, 5, 2, 8, 0, 30)
    assert reports_check(now=now, config=CONFIG) == [date(2026, 5, 1)]
    assert reports_check(now=now, config=CONFIG) == [date(2026, 5, 1)]
    first = report_attempt(day=date(2026, 5, 1), now=now, config=CONFIG)
    second = report_attempt(day=date(2026, 5, 1), now=now, config=CONFIG)
    check_and_send(now + timedelta(minutes=1))

    assert (first is not None and first.sent, second) == (True, None)
    assert rows() == {"2026-05-01": ("sent", 1)}
    assert len(smtp.messages()) == 1


def test_an_attempt_under_way_is_not_started_again_until_its_lease_runs_out(smtp):
    check_and_send(utc(2026, 5, 1, 12, 0))
    now = utc(2026, 5, 2, 8, 0)
    reports_check(now=now, config=CONFIG)
    # A process took the attempt and died before recording anything.
    Report.objects.update(attempts=1, lease_until=now + LEASE)

    assert reports_check(now=now + LEASE - timedelta(seconds=1), config=CONFIG) == []
    check_and_send(now + LEASE + timedelta(seconds=1))

    assert rows() == {"2026-05-01": ("sent", 2)}


def test_smtp_refusing_twice_is_retried_with_backoff_and_logged_without_the_password(smtp):
    check_and_send(utc(2026, 5, 1, 12, 0))
    smtp.refuse_next(2)
    now = utc(2026, 5, 2, 8, 0)
    with json_lines(secrets=[*settings.LOG_SECRETS, SMTP_PASSWORD]) as log:
        check_and_send(now)
        report = Report.objects.get()
        assert (report.status, report.attempts) == ("pending", 1)
        assert report.next_attempt_at == now + timedelta(seconds=60)
        assert report.reason.startswith("SMTPDataError: (451")
        check_and_send(now + timedelta(seconds=59))  # not yet
        check_and_send(now + timedelta(seconds=60))  # the second, refused: 120 s more
        assert Report.objects.get().next_attempt_at == now + timedelta(seconds=180)
        check_and_send(now + timedelta(seconds=180))

    report = Report.objects.get()
    assert (report.status, report.attempts, report.reason) == ("sent", 3, "")
    assert report.sent_at == now + timedelta(seconds=180)
    assert (smtp.refused, len(smtp.messages())) == (2, 1)
    retries = [e for e in events(log.lines) if e["event"] == "daily report not delivered: retrying"]
    assert [(e["attempt"], e["retry_in_seconds"]) for e in retries] == [(1, 60.0), (2, 120.0)]
    assert "451" in retries[0]["error"]
    assert SMTP_PASSWORD not in "\n".join(log.lines)


def reports_metric(api) -> dict[str, float]:
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(api.get("/metrics").content.decode())
        for sample in family.samples
        if sample.name == "notifier_reports_total"
    }


def test_reports_sent_failed_and_skipped_are_counted_in_the_metrics(smtp, api):
    before = reports_metric(api)
    check_and_send(utc(2026, 5, 1, 12, 0))
    check_and_send(utc(2026, 5, 2, 8, 0))  # sent
    smtp.stop()
    for minutes in (0, 1, 3, 10):  # the next day's: every attempt fails
        check_and_send(utc(2026, 5, 3, 8, minutes))
    check_and_send(utc(2026, 5, 20, 8, 0))  # down since: 3 to 12 May skipped

    after = reports_metric(api)
    assert {k: after[k] - before.get(k, 0) for k in after} == {
        "sent": 1,  # 1 May's
        "failed": 1,  # 2 May's (13 to 19 May have attempts left)
        "skipped": 10,
    }


def test_when_every_attempt_fails_the_report_is_failed_with_the_reason(smtp):
    check_and_send(utc(2026, 5, 1, 12, 0))
    smtp.stop()  # nobody listens any more: connection refused
    now = utc(2026, 5, 2, 8, 0)
    for minutes in (0, 1, 3, 10, 60):
        check_and_send(now + timedelta(minutes=minutes))

    report = Report.objects.get()
    assert (report.status, report.attempts) == ("failed", 3)
    assert report.reason.startswith("ConnectionRefusedError:")
    assert SMTP_PASSWORD not in report.reason


@pytest.mark.parametrize("send_at", [time(8, 0), time(2, 30)])
@pytest.mark.parametrize("month", [3, 10])
def test_dst_days_in_berlin_are_neither_skipped_nor_doubled(smtp, eager, settings, send_at, month):
    """Beat's check every five minutes, through the spring and autumn changes, by the tasks
    themselves under a moving clock: one report per day, each at its own send moment (02:30
    does not exist on 29 March and happens twice on 25 October)."""
    berlin = ZoneInfo("Europe/Berlin")
    settings.REPORTS = {
        **settings.REPORTS,
        "TIMEZONE": "Europe/Berlin",
        "SEND_AT": send_at.isoformat("minutes"),
        "RECIPIENTS": ["ops@example.com"],
    }
    change = date(2026, 3, 29) if month == 3 else date(2026, 10, 25)
    prepare_day(change, berlin)
    start = utc(2026, month, change.day - 2, 12)
    moment = start
    while moment < start + timedelta(days=4):
        with time_machine.travel(moment, tick=False):
            tasks.check()
        moment += timedelta(minutes=5)

    sent = {r.date: r.sent_at for r in Report.objects.all()}
    # From the day the service started to the last due: the day before it started was due
    # before the first check.
    expected = [change + timedelta(days=n) for n in (-2, -1, 0, 1)]
    assert sorted(sent) == expected
    for day, sent_at in sent.items():
        moment = due_at(day, zone=berlin, send_at=send_at)
        assert moment <= sent_at < moment + timedelta(minutes=5), day
    subjects = [m.message["Subject"] for m in smtp.messages()]
    assert len(subjects) == len(expected)
    assert len(set(subjects)) == len(expected)
    (dst_day,) = [m for m in smtp.messages() if change.isoformat() in m.message["Subject"]]
    assert ("23 hours" if month == 3 else "25 hours") in dst_day.part("text/plain")
    assert "250 sent" in dst_day.message["Subject"]
