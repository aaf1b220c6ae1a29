"""Each day has exactly one send moment, whatever the clocks do: unit tests of the arithmetic."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier.reports.schedule import day_bounds, days, due_at, first_day_due_from, last_due_day

BERLIN = ZoneInfo("Europe/Berlin")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "send_at", "expected"),
    [
        # The report of the day before a change goes out on the day of the change, at the
        # local time asked for, with that day's offset.
        (date(2026, 3, 28), time(8, 0), utc(2026, 3, 29, 6, 0)),  # CEST already
        (date(2026, 3, 27), time(8, 0), utc(2026, 3, 28, 7, 0)),  # CET
        (date(2026, 10, 24), time(8, 0), utc(2026, 10, 25, 7, 0)),  # CET again
        # 02:30 does not exist on 29 March: read with the offset before the change.
        (date(2026, 3, 28), time(2, 30), utc(2026, 3, 29, 1, 30)),
        # 02:30 happens twice on 25 October: the first time.
        (date(2026, 10, 24), time(2, 30), utc(2026, 10, 25, 0, 30)),
    ],
)
def test_the_send_moment_is_the_local_time_of_that_date(day, send_at, expected):
    assert due_at(day, zone=BERLIN, send_at=send_at) == expected


@pytest.mark.parametrize("send_at", [time(0, 0), time(2, 30), time(3, 0), time(8, 0), time(23, 59)])
def test_across_both_changes_every_day_falls_due_once_and_in_order(send_at):
    """Walking a minute at a time through March and October: the last due day moves by one
    day at a time, at each day's send moment, never skipping or repeating one."""
    for start in (utc(2026, 3, 27), utc(2026, 10, 23)):
        seen = []
        moment = start
        while moment < start + timedelta(days=4):
            day = last_due_day(moment, zone=BERLIN, send_at=send_at)
            if not seen or seen[-1][0] != day:
                seen.append((day, moment))
            moment += timedelta(minutes=1)
        dates = [d for d, _ in seen]
        assert dates == days(dates[0], dates[-1])
        for day, first_seen in seen[1:]:
            assert first_seen == due_at(day, zone=BERLIN, send_at=send_at)


def test_the_first_day_due_from_a_moment():
    send_at = time(8, 0)
    moment = due_at(date(2026, 5, 1), zone=BERLIN, send_at=send_at)
    assert first_day_due_from(moment, zone=BERLIN, send_at=send_at) == date(2026, 5, 1)
    later = moment + timedelta(seconds=1)
    assert first_day_due_from(later, zone=BERLIN, send_at=send_at) == date(2026, 5, 2)
    assert last_due_day(moment - timedelta(seconds=1), zone=BERLIN, send_at=send_at) == date(
        2026, 4, 30
    )


def test_days_are_whole_local_days_that_follow_each_other():
    for day in days(date(2026, 3, 25), date(2026, 4, 2)):
        _, until = day_bounds(day, BERLIN)
        assert day_bounds(day + timedelta(days=1), BERLIN)[0] == until
    assert day_bounds(date(2026, 3, 29), BERLIN)[1] - day_bounds(date(2026, 3, 29), BERLIN)[0] == (
        timedelta(hours=23)
    )
