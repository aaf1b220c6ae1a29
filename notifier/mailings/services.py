from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifier.core.errors import DomainError
from notifier.mailings.models import Mailing, Message
from notifier.sending.store import wait_for_claims_to_start
from notifier.sending.wakeups import START_HORIZON, wake_after_commit

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
    mailing = Mailing.objects.create(
        start_at=start_at,
        end_at=end_at,
        text=text,
        operator_codes=normalise_set(operator_codes),
        tags=normalise_set(tags),
    )
    _wake_at_start(mailing)
    return mailing


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
        shortened = "end_at" in changed and data["end_at"] < mailing.end_at
        for key in changed:
            setattr(mailing, key, data[key])
        _check_window(start_at=mailing.start_at, end_at=mailing.end_at)
        mailing.save()
        if "start_at" in changed:
            _wake_at_start(mailing)
        sending = _sending(mailing_id=mailing.id) if shortened else 0
    # Messages claimed under the old end time start within the start window, or never.
    wait_for_claims_to_start(sending=sending)
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
    """Stop a mailing for good, keeping its history: its pending messages become `cancelled`
    at once, those in flight when their outcome is known. When this returns, no request for
    the mailing starts any more."""
    with transaction.atomic():
        # The update lock waits for claims in progress; claims after it see the cancellation.
        mailing = Mailing.objects.select_for_update().get(pk=mailing.pk)
        if mailing.cancelled_at is None:
            mailing.cancelled_at = timezone.now()
            mailing.save(update_fields=["cancelled_at", "updated_at"])
            Message.objects.filter(mailing=mailing, status=Message.Status.PENDING).update(
                status=Message.Status.CANCELLED
            )
        sending = _sending(mailing_id=mailing.id)
    wait_for_claims_to_start(sending=sending)
    return mailing


def mailing_delete(*, mailing: Mailing) -> None:
    """Delete a mailing and its messages; no request for it starts after this returns."""
    mailing_cancel(mailing=mailing)
    mailing.delete()


def messages_cancel_for_client(*, client_id: int) -> int:
    """Pending messages to a client who is being removed never go out; returns how many of
    its messages are in flight (their outcome is recorded when known)."""
    Message.objects.filter(client_id=client_id, status=Message.Status.PENDING).update(
        status=Message.Status.CANCELLED
    )
    return Message.objects.filter(client_id=client_id, status=Message.Status.SENDING).count()


def _sending(*, mailing_id: int) -> int:
    return Message.objects.filter(mailing_id=mailing_id, status=Message.Status.SENDING).count()


def _wake_at_start(mailing: Mailing) -> None:
    """Ask a worker to start the mailing at its start time, if that is now or very soon;
    later starts are found by the tick."""
    lead = (mailing.start_at - timezone.now()).total_seconds()
    if lead <= START_HORIZON:
        eta = mailing.start_at if lead > 0 else None
        wake_after_commit("sending.start_mailing", mailing.id, eta=eta)


def normalise_set(values: list[str] | None) -> list[str]:
    """A filter is a set: order and repeats carry no meaning, so store it sorted and unique."""
    return sorted(set(values or []))


def _check_window(*, start_at: datetime, end_at: datetime) -> None:
    if end_at <= start_at:
        raise DomainError("The end of the mailing must be after its start.", field="end_at")
