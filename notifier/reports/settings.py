"""The daily report's knobs, from the environment (see `.env.example`), parsed and checked."""

import re
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

# A report that fell due longer ago than this is not sent any more (logged as skipped).
CATCH_UP_DAYS = 7


@dataclass(frozen=True)
class ReportSettings:
    recipients: tuple[str, ...]  # empty: no report is sent
    zone: ZoneInfo  # the report's days are this zone's calendar days
    send_at: time  # the day's report goes out at this local time on the next day
    retry_seconds: float  # first delay after a failed delivery; doubles per attempt
    max_attempts: int  # deliveries tried before the report is recorded as failed
    public_url: str  # base of the console links, without a trailing slash

    @classmethod
    def load(cls) -> "ReportSettings":
        raw = settings.REPORTS
        return cls(
            recipients=parse_recipients(raw["RECIPIENTS"], name="REPORT_RECIPIENTS"),
            zone=parse_zone(raw["TIMEZONE"]),
            send_at=parse_send_at(raw["SEND_AT"]),
            retry_seconds=_positive(raw["RETRY_SECONDS"], "REPORT_RETRY_SECONDS"),
            max_attempts=int(_positive(raw["MAX_ATTEMPTS"], "REPORT_MAX_ATTEMPTS")),
            public_url=settings.PUBLIC_URL.rstrip("/"),
        )


def parse_recipients(addresses: list[str], *, name: str) -> tuple[str, ...]:
    result = tuple(a.strip() for a in addresses if a.strip())
    for address in result:
        try:
            validate_email(address)
        except ValidationError:
            raise ImproperlyConfigured(f"{name}: {address!r} is not an e-mail address") from None
    return result


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"REPORT_TIMEZONE: {name!r} is not an IANA time zone such as Europe/Berlin"
        ) from None


def parse_send_at(value: str) -> time:
    """`HH:MM`, or `HH:MM:SS` (the tests send a report within seconds)."""
    try:
        if not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
            raise ValueError(value)
        parsed = time.fromisoformat(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"REPORT_SEND_AT: {value!r} is not a time of day as HH:MM, such as 08:00"
        ) from None
    return parsed


def _positive(value: float, name: str) -> float:
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, not {value}")
    return value
