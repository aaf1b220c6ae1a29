"""What a mailing may be: the rules every write path checks, with no writes of their own."""

from datetime import datetime
from typing import Any

from django.utils import timezone

from notifier.core.errors import DomainError
from notifier.mailings.models import Mailing

FROZEN_ONCE_STARTED = (
    "start_at",
    "operator_codes",
    "tags",
    "send_window_start",
    "send_window_end",
)


# How the API names the frozen fields that are not its own.
FIELD_NAMES = {
    "start_at": "start_at",
    "send_window_start": "send_window",
    "send_window_end": "send_window",
}


def mailing_check_new(*, start_at: datetime, end_at: datetime) -> None:
    """A new mailing must end in the future, after its start."""
    if end_at <= timezone.now():
        raise DomainError("The end of the mailing must be in the future.", field="end_at")
    mailing_check_window(start_at=start_at, end_at=end_at)


def mailing_check_window(*, start_at: datetime, end_at: datetime) -> None:
    if end_at <= start_at:
        raise DomainError("The end of the mailing must be after its start.", field="end_at")


def mailing_check_change(*, mailing: Mailing, data: dict[str, Any]) -> set[str]:
    """The fields that `data` would really change; refuses changes the mailing's state forbids."""
    if mailing.cancelled_at is not None:
        raise DomainError("A cancelled mailing cannot be changed.")
    changed = {key for key, value in data.items() if getattr(mailing, key) != value}
    if mailing.has_started():
        for key in FROZEN_ONCE_STARTED:
            if key in changed:
                raise DomainError(
                    "The mailing has started: its start time, filter and send window can no"
                    " longer change (its text and end time can).",
                    field=FIELD_NAMES.get(key, f"filter.{key}"),
                )
    return changed


def normalise_set(values: list[str] | None) -> list[str]:
    """A filter is a set: order and repeats carry no meaning, so store it sorted and unique."""
    return sorted(set(values or []))
