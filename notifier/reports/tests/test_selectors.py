"""The report's numbers come from the rollups and counts: the day is the zone's calendar
day to the minute, outcomes of the minutes just outside it are not its own."""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifier.mailings.selectors import ErrorCount
from notifier.reports.schedule import day_bounds
from notifier.reports.selectors import Outcomes, daily_report
from notifier.reports.tests.support import (
    INVALID,
    NEVER_SENT,
    ZONE,
    mailing,
    outcome,
    prepare_day,
)

pytestmark = pytest.mark.django_db
DAY = date(2026, 6, 10)


def test_a_day_of_two_mailings_in_a_zone_half_an_hour_off_utc():
    prepared = prepare_day(DAY)

    report = daily_report(day=DAY, zone=ZONE)

    assert [(m.id, m.state) for m in report.mailings] == [
        (prepared.a, "finished"),
        (prepared.b, "running"),
    ]
    a, b = report.mailings
    assert a.day == Outcomes(sent=200, failed=3, expired=7)
    assert a.overall == Outcomes(sent=300, failed=8, expired=7, pending=0)
    assert b.day == Outcomes(sent=50, failed=2, expired=1)
    assert b.overall == Outcomes(sent=50, failed=2, expired=1, pending=947)
    assert report.day_totals == Outcomes(sent=250, failed=5, expired=8)
    assert report.overall_totals.pending == 947
    assert round(report.day_totals.delivery_rate or 0, 4) == round(250 / 263, 4)
    assert report.errors == [
        ErrorCount("expired", NEVER_SENT, 7, 1),
        ErrorCount("failed", INVALID, 5, 2),
        ErrorCount("expired", "expired: no attempt fits before the end", 1, 1),
    ]
    assert report.api.attempts == {
        "delivered": 250,
        "transient": 10,
        "permanent": 5,
        "unauthorized": 0,
    }
    assert report.api.latency_p50 == 0.05
    assert report.api.latency_p95 == 1
    assert report.api.error_rate == 10 / 265


def test_the_day_is_local_midnight_to_midnight_even_on_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")
    since, until = day_bounds(date(2026, 3, 29), berlin)
    assert (since.isoformat(), until.isoformat()) == (
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T22:00:00+00:00",
    )
    since, until = day_bounds(date(2026, 10, 25), berlin)
    assert until - since == timedelta(hours=25)


def test_a_mailing_deleted_since_keeps_its_outcomes_in_the_report():
    since, _ = day_bounds(DAY, ZONE)
    outcome(987654, since + timedelta(hours=1), "sent", 12)

    (line,) = daily_report(day=DAY, zone=ZONE).mailings

    assert (line.id, line.state, line.day.sent, line.overall.pending) == (
        987654,
        "deleted",
        12,
        None,
    )


def test_mailings_that_did_not_run_that_day_are_left_out():
    since, until = day_bounds(DAY, ZONE)
    mailing(start_at=since - timedelta(days=1), end_at=since)  # ended as the day began
    mailing(start_at=until, end_at=until + timedelta(hours=1))  # starts as it ends
    mailing(  # cancelled before it started, its start inside the day
        start_at=since + timedelta(hours=5),
        end_at=since + timedelta(hours=6),
        cancelled_at=since + timedelta(hours=1),
    )
    mailing(  # done before the day, its window still open
        start_at=since - timedelta(hours=5),
        end_at=since + timedelta(hours=6),
        finished_at=since - timedelta(hours=1),
    )
    ran = mailing(start_at=since - timedelta(hours=1), end_at=since + timedelta(minutes=1))

    assert [m.id for m in daily_report(day=DAY, zone=ZONE).mailings] == [ran.id]


def test_the_report_reads_a_few_rollup_queries_and_never_the_messages():
    prepare_day(DAY)
    with CaptureQueriesContext(connection) as queries:
        daily_report(day=DAY, zone=ZONE)
    assert len(queries) <= 6
    assert not [q for q in queries.captured_queries if '"mailings_message"' in q["sql"]]
