"""Send-window arithmetic over real daylight-saving transitions: pure, milliseconds."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier.mailings.windows import SendWindow, local_instant

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MOSCOW = ZoneInfo("Europe/Moscow")


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "wall", "expected"),
    [
        # An ordinary day: the wall time, at the zone's offset.
        (BERLIN, date(2026, 3, 28), time(9, 0), utc(2026, 3, 28, 8, 0)),
        (BERLIN, date(2026, 3, 30), time(9, 0), utc(2026, 3, 30, 7, 0)),
        # Spring forward (02:00 -> 03:00): a wall time in the gap opens as the gap ends.
        (BERLIN, date(2026, 3, 29), time(2, 30), utc(2026, 3, 29, 1, 0)),
        (NEW_YORK, date(2026, 3, 8), time(2, 15), utc(2026, 3, 8, 7, 0)),
        # Fall back (03:00 -> 02:00, 01:00 -> 00:00 in New York): the first occurrence.
        (BERLIN, date(2026, 10, 25), time(2, 30), utc(2026, 10, 25, 0, 30)),
        (NEW_YORK, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),
        # Moscow's last spring-forward (MSK+3 -> +4, 2011), and its move back to +3 (2014).
        (MOSCOW, date(2011, 3, 27), time(2, 30), utc(2011, 3, 26, 23, 0)),
        (MOSCOW, date(2014, 10, 26), time(1, 30), utc(2014, 10, 25, 21, 30)),
        (MOSCOW, date(2014, 10, 27), time(9, 0), utc(2014, 10, 27, 6, 0)),
    ],
)
def test_a_wall_time_is_the_instant_the_clocks_first_show_it(zone, day, wall, expected):
    assert local_instant(day, wall, zone) == expected


def test_a_start_in_a_spring_forward_gap_opens_at_the_first_instant_after_it():
    window = SendWindow(time(2, 30), time(5, 0))
    before = utc(2026, 3, 29, 0, 0)  # 01:00 CET
    opening = window.next_opening(before, BERLIN)
    assert opening == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert window.contains(opening, BERLIN)
    assert not window.contains(opening - timedelta(seconds=1), BERLIN)


def test_a_fall_back_day_opens_once_and_counts_the_repeated_hour_as_inside():
    window = SendWindow(time(2, 0), time(3, 0))
    before = utc(2026, 10, 24, 23, 0)  # 01:00 CEST
    opening = window.next_opening(before, BERLIN)
    assert opening == utc(2026, 10, 25, 0, 0)  # 02:00 CEST, the first time
    # The hour repeats: 02:xx CEST and again 02:xx CET are both inside.
    assert window.contains(utc(2026, 10, 25, 0, 30), BERLIN)
    assert window.contains(utc(2026, 10, 25, 1, 30), BERLIN)
    assert not window.contains(utc(2026, 10, 25, 2, 0), BERLIN)  # 03:00 CET
    # The next opening after it is the next day's, not a second one that day.
    assert window.next_opening(utc(2026, 10, 25, 2, 0), BERLIN) == utc(2026, 10, 26, 1, 0)


def test_an_overnight_window_spans_midnight():
    night = SendWindow(time(22, 0), time(6, 0))
    assert night.contains(utc(2026, 12, 2, 21, 30), BERLIN)  # 22:30
    assert night.contains(utc(2026, 12, 3, 4, 59), BERLIN)  # 05:59
    assert not night.contains(utc(2026, 12, 3, 5, 0), BERLIN)  # 06:00
    assert night.next_opening(utc(2026, 12, 3, 11, 0), BERLIN) == utc(2026, 12, 3, 21, 0)
    assert night.next_opening(utc(2026, 12, 3, 1, 0), BERLIN) == utc(2026, 12, 3, 1, 0)


def test_each_zone_keeps_its_own_clock():
    window = SendWindow(time(9, 0), time(18, 0))
    noon_utc = utc(2026, 12, 2, 12, 0)
    assert window.contains(noon_utc, BERLIN)  # 13:00
    assert window.contains(noon_utc, MOSCOW)  # 15:00
    assert not window.contains(noon_utc, NEW_YORK)  # 07:00
    assert window.next_opening(noon_utc, NEW_YORK) == utc(2026, 12, 2, 14, 0)
    assert not window.contains(noon_utc, ZoneInfo("Asia/Tokyo"))  # 21:00
    assert window.next_opening(noon_utc, ZoneInfo("Asia/Tokyo")) == utc(2026, 12, 3, 0, 0)


def test_a_window_must_have_two_different_ends():
    with pytest.raises(ValueError, match="differ"):
        SendWindow(time(9, 0), time(9, 0))
