"""A day of mailings for the report's tests, written straight into the rollups and counts the
report reads (the triggers that keep them are tested in notifier/mailings/tests): two
mailings, outcomes on both sides of each end of the day, errors, requests to the API."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from notifier.mailings.models import Mailing, MessageCount, MessageErrorMinute, MessageMinute
from notifier.mailings.tests.factories import MailingFactory
from notifier.reports.schedule import day_bounds
from notifier.sending.models import AttemptMinute

# Half an hour off UTC: a day boundary that no whole-hour slip gets right by chance.
ZONE = ZoneInfo("Asia/Kolkata")
INVALID = "HTTP 400: invalid phone number"
NEVER_SENT = "expired: the mailing ended before it was sent"


def mailing(**fields: object) -> Mailing:
    return cast(Mailing, MailingFactory(**fields))


def outcome(mailing_id: int, minute: datetime, status: str, n: int, error: str = "") -> None:
    MessageMinute.objects.create(
        mailing_id=mailing_id, minute=minute, status=status, number=n, base=True
    )
    if status in ("failed", "expired"):
        MessageErrorMinute.objects.create(
            mailing_id=mailing_id, minute=minute, status=status, error=error, number=n, base=True
        )


def counts(mailing_id: int, **by_status: int) -> None:
    for status, n in by_status.items():
        MessageCount.objects.create(mailing_id=mailing_id, status=status, number=n, base=True)


def attempts(minute: datetime, outcome: str, bucket: int, n: int) -> None:
    AttemptMinute.objects.create(minute=minute, outcome=outcome, bucket=bucket, number=n, base=True)


@dataclass(frozen=True)
class Day:
    day: date
    a: int  # mailing ids
    b: int


def prepare_day(day: date, zone: ZoneInfo = ZONE) -> Day:
    """Mailing A ran over the night into `day` and finished in it; mailing B started during
    it and still runs. Expected, for `day`: sent 250, failed 5, expired 8 (95.0% delivered);
    at its end A stood at 300 / 8 / 7 / 0 pending, B at 50 / 2 / 1 / 947 pending."""
    since, until = day_bounds(day, zone)
    minute = timedelta(minutes=1)
    a = mailing(
        start_at=since - timedelta(hours=2), end_at=since + timedelta(hours=8), text="Night sale"
    )
    b = mailing(
        start_at=since + timedelta(hours=15),
        end_at=until + timedelta(hours=15),
        text="Evening <b>news</b> & more",
    )
    mailing(start_at=since - timedelta(days=3), end_at=since - timedelta(days=2))  # before
    mailing(start_at=until + timedelta(hours=1), end_at=until + timedelta(hours=3))  # after
    # A: the minute before the day, its first minute, and later on.
    outcome(a.id, since - minute, "sent", 100)
    outcome(a.id, since - minute, "failed", 5, "HTTP 400: blocked")
    outcome(a.id, since, "sent", 200)
    outcome(a.id, since, "expired", 7, NEVER_SENT)
    outcome(a.id, since + timedelta(hours=6), "failed", 3, INVALID)
    counts(a.id, sent=300, failed=8, expired=7)
    a.finished_at = since + timedelta(hours=6, minutes=1)
    a.save()
    # B: its last minute inside the day, and the first one after.
    outcome(b.id, until - minute, "sent", 50)
    outcome(b.id, until - minute, "failed", 2, INVALID)
    outcome(b.id, until - minute, "expired", 1, "expired: no attempt fits before the end")
    outcome(b.id, until, "sent", 30)
    counts(b.id, sent=80, failed=2, expired=1, pending=910, sending=7)
    # The API: 250 delivered at <= 50 ms, 15 answered at <= 1 s (5 refused, 10 retried).
    attempts(since, "delivered", 5, 250)
    attempts(since + timedelta(hours=6), "permanent", 9, 5)
    attempts(until - minute, "transient", 9, 10)
    attempts(until, "transient", 13, 1000)  # the next day
    return Day(day, a.id, b.id)
