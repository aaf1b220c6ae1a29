from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifier.core.errors import DomainError
from notifier.mailings.models import Mailing, Message

FROZEN_ONCE_STARTED = ("start_at", "operator_codes", "tags")


def mailing_create(
    *,
    start_at: datetime,
    end_at: datetime,
    text: str,
    operator_codes: list[str] | None = None,
    tags: list[str] | None = None,
) -> Mailing:
    """Create a mailing. Sending begins by itself when the window opens."""
    if end_at <= timezone.now():
        raise DomainError("The end of the mailing must be in the future.", field="end_at")
    _check_window(start_at=start_at, end_at=end_at)
    return Mailing.objects.create(
        start_at=start_at,
        end_at=end_at,
        text=text,
        operator_codes=normalise_set(operator_codes),
        tags=normalise_set(tags),
    )


def mailing_update(*, mailing: Mailing, data: dict[str, Any]) -> Mailing:
    """Change a mailing. Once it has started, its audience is fixed: the start time and the
    filter may no longer change; the text and the end time may."""
    data = {
        key: normalise_set(value) if key in ("operator_codes", "tags") else value
        for key, value in data.items()
    }
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
        changed = mailing_check_change(mailing=mailing, data=data)
        for key in changed:
            setattr(mailing, key, data[key])
        _check_window(start_at=mailing.start_at, end_at=mailing.end_at)
        mailing.save()
    return mailing


def mailing_check_change(*, mailing: Mailing, data: dict[str, Any]) -> set[str]:
    """The fields that `data` would really change; refuses changes the mailing's state forbids."""
    if mailing.cancelled_at is not None:
        raise DomainError("A cancelled mailing cannot be changed.")
    changed = {key for key, value in data.items() if getattr(mailing, key) != value}
    if mailing.has_started():
        for key in FROZEN_ONCE_STARTED:
            if key in changed:
                raise DomainError(
                    "The mailing has started: its start time and filter can no longer "
                    "change (its text and end time can).",
                    field="start_at" if key == "start_at" else f"filter.{key}",
                )
    return changed


def mailing_cancel(*, mailing: Mailing) -> Mailing:
    """Stop a mailing for good, keeping its history: unsent messages become `cancelled`."""
    with transaction.atomic():
        mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
        if mailing.cancelled_at is None:
            mailing.cancelled_at = timezone.now()
            mailing.save(update_fields=["cancelled_at", "updated_at"])
            Message.objects.filter(mailing=mailing, status__in=Message.ACTIVE_STATUSES).update(
                status=Message.Status.CANCELLED, lease_until=None
            )
    return mailing


def mailing_delete(*, mailing: Mailing) -> None:
    """Delete a mailing and its messages."""
    mailing.delete()


def messages_cancel_for_client(*, client_id: int) -> int:
    """Unsent messages to a client who is being removed must never go out."""
    return Message.objects.filter(client_id=client_id, status__in=Message.ACTIVE_STATUSES).update(
        status=Message.Status.CANCELLED, lease_until=None
    )


def normalise_set(values: list[str] | None) -> list[str]:
    """A filter is a set: order and repeats carry no meaning, so store it sorted and unique."""
    return sorted(set(values or []))


def _check_window(*, start_at: datetime, end_at: datetime) -> None:
    if end_at <= start_at:
        raise DomainError("The end of the mailing must be after its start.", field="end_at")
