"""A mailing's send window: the local times of day at which its messages may go out, in each
client's own timezone. Pure arithmetic on aware datetimes; no database.

Wall times are turned into instants per date in the zone, so daylight saving time is neither
skipped nor doubled: a start that does not exist on a spring-forward day opens at the first
instant after the gap, and on a fall-back day the first occurrence of a repeated time counts.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class SendWindow:
    """`[start, end)` in local time; an `end` before `start` is a window across midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a send window needs its start and end to differ")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, instant: datetime, zone: ZoneInfo) -> bool:
        local = instant.astimezone(zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_opening(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """`instant` if the window is open then, else the moment it next opens."""
        if self.contains(instant, zone):
            return instant
        today = instant.astimezone(zone).date()
        for days in range(0, 3):
            opening = local_instant(today + timedelta(days=days), self.start, zone)
            if opening > instant:
                return opening
        raise AssertionError("a daily window opens within two days")  # pragma: no cover


@cache
def zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The instant at which the clocks of `zone` first show `wall` on `day` (in UTC); for a
    wall time that the zone skips that day, the first instant after the gap."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)
    # Skipped: the clocks jump over it. The jump lies between the wall time read with the
    # offset after it and with the offset before it, at a whole minute: bisect for it.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)  # still the old offset
    high = first.astimezone(UTC)  # already the new one
    old_offset = _offset(low, zone)
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) // 2
        middle -= timedelta(seconds=middle.second, microseconds=middle.microsecond)
        if _offset(middle, zone) == old_offset:
            low = middle
        else:
            high = middle
    return high


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()
