"""When each day's report is due: pure arithmetic on calendar days of the report's zone.

A day is from its local midnight to the next one (23 or 25 hours on a DST change); its report
is due at `send_at` local time on the next day, converted for that date, so every date has
exactly one send moment, however the clocks moved. A local time that does not exist (skipped
by a DST change) is read with the offset before the change, one that occurs twice as its
first occurrence (`fold=0`, as zoneinfo does)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The day as `[since, until)` in UTC."""
    return _local(day, time(0), zone), _local(day + timedelta(days=1), time(0), zone)


def due_at(day: date, *, zone: ZoneInfo, send_at: time) -> datetime:
    """When the report of `day` is due, in UTC."""
    return _local(day + timedelta(days=1), send_at, zone)


def last_due_day(now: datetime, *, zone: ZoneInfo, send_at: time) -> date:
    """The latest day whose report is due at `now`."""
    day = now.astimezone(zone).date() - timedelta(days=1)
    # Before today's send time it is the day before yesterday's.
    return day if due_at(day, zone=zone, send_at=send_at) <= now else day - timedelta(days=1)


def first_day_due_from(moment: datetime, *, zone: ZoneInfo, send_at: time) -> date:
    """The earliest day whose report is due at `moment` or later."""
    day = last_due_day(moment, zone=zone, send_at=send_at)
    return day if due_at(day, zone=zone, send_at=send_at) >= moment else day + timedelta(days=1)


def days(first: date, last: date) -> list[date]:
    """`first` to `last`, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
