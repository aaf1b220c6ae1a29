"""What a mailing may be: the rules every write path checks, with no writes of their own."""

from datetime import datetime
from typing import Any

from django.utils import timezone

from notifier.core.errors import DomainError
from notifier.mailings.models import Mailing

# Once a mailing has started, what it sends is a matter of record: its text, audience and
# start stay as the messages went out with them. Only its end can move (to stop it earlier,
# or to reopen a finished one's window for a retry). Any field not listed here is frozen,
# the send window included, and so is any added later.
CHANGEABLE_ONCE_STARTED = frozenset({"end_at"})
# The names the callers know these fields by (the API's filter and send window objects).
FIELD_NAMES = {
    "operator_codes": "filter.operator_codes",
    "tags": "filter.tags",
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
    """The fields that `data` would really change; refuses changes the mailing's state
    forbids: none once cancelled, only `end_at` once started (finished included)."""
    changed = {key for key, value in data.items() if getattr(mailing, key) != value}
    if mailing.cancelled_at is not None:
        raise DomainError(
            "The mailing was cancelled: it can no longer be changed.",
            fields=_names(changed),
        )
    frozen = changed - CHANGEABLE_ONCE_STARTED
    if frozen and mailing.has_started():
        state = "finished" if mailing.status == Mailing.Status.FINISHED else "started"
        raise DomainError(
            f"The mailing has {state}: its start, text, filter and send window stay as its "
            "messages were sent with them; only its end time (end_at) can change.",
            fields=_names(frozen),
        )
    return changed


def _names(fields: set[str]) -> list[str]:
    return sorted({FIELD_NAMES.get(field, field) for field in fields})


def normalise_set(values: list[str] | None) -> list[str]:
    """A filter is a set: order and repeats carry no meaning, so store it sorted and unique."""
    return sorted(set(values or []))
