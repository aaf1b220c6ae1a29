import time
from collections import Counter
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from notifier.core import logging
from notifier.core.errors import DomainError
from notifier.mailings.models import Mailing, Message
from notifier.ops import metrics
from notifier.sending.wakeups import START_HORIZON, wake_after_commit

log = logging.get_logger(__name__)
FROZEN_ONCE_STARTED = ("start_at", "operator_codes", "tags")
TRANSITION_CHUNK = 5000


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
    logging.bind(mailing_id=mailing.id)
    log.info(
        "mailing created",
        start_at=mailing.start_at,
        end_at=mailing.end_at,
        operator_codes=mailing.operator_codes,
        tags=mailing.tags,
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
        logging.bind(mailing_id=mailing.id)
        changed = mailing_check_change(mailing=mailing, data=data)
        shortened = "end_at" in changed and data["end_at"] < mailing.end_at
        for key in changed:
            setattr(mailing, key, data[key])
        _check_window(start_at=mailing.start_at, end_at=mailing.end_at)
        mailing.save()
        if "start_at" in changed:
            _wake_at_start(mailing)
        log.info("mailing changed", fields=sorted(changed))
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
        logging.bind(mailing_id=mailing.id)
        if mailing.cancelled_at is None:
            mailing.cancelled_at = timezone.now()
            mailing.save(update_fields=["cancelled_at", "updated_at"])
            log.info("mailing cancelled")
            messages_transition(
                Message.objects.filter(mailing=mailing, status=Message.Status.PENDING),
                to=Message.Status.CANCELLED,
                reason="mailing cancelled",
            )
        sending = _sending(mailing_id=mailing.id)
    wait_for_claims_to_start(sending=sending)
    return mailing


def mailing_delete(*, mailing: Mailing) -> None:
    """Delete a mailing and its messages; no request for it starts after this returns."""
    mailing_cancel(mailing=mailing)
    mailing.delete()
    log.info("mailing deleted", mailing_id=mailing.id)


def messages_cancel_for_client(*, client_id: int) -> int:
    """Pending messages to a client who is being removed never go out; returns how many of
    its messages are in flight (their outcome is recorded when known)."""
    messages_transition(
        Message.objects.filter(client_id=client_id, status=Message.Status.PENDING),
        to=Message.Status.CANCELLED,
        reason="client deleted",
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


def messages_transition(
    messages: QuerySet[Message], *, to: str, reason: str, **changes: Any
) -> Counter[int]:
    """Move the given messages to status `to`, logging each one (its id, mailing and client)
    for the record of what happened to every message; in chunks, so that a million cost no
    more memory than a few thousand. Returns how many moved, by mailing."""
    moved: Counter[int] = Counter()
    while True:
        with transaction.atomic():
            rows = list(
                messages.select_for_update(skip_locked=True)
                .order_by()
                .values_list("id", "mailing_id", "client_id", "status")[:TRANSITION_CHUNK]
            )
            if not rows:
                return moved
            Message.objects.filter(id__in=[row[0] for row in rows]).update(status=to, **changes)
            if to in Message.FINAL_STATUSES:
                transaction.on_commit(partial(metrics.record_final, to, len(rows)))
        for message_id, mailing_id, client_id, status_from in rows:
            log.info(
                "message status changed",
                message_id=message_id,
                mailing_id=mailing_id,
                client_id=client_id,
                status_from=status_from,
                status_to=to,
                reason=reason,
            )
            moved[mailing_id] += 1


def wait_for_claims_to_start(*, sending: int) -> None:
    """After a change that stops claims (cancel, delete, an earlier end), wait until every
    message claimed before it has either started its request or been released: a worker
    never starts a request more than `start_window` after claiming it."""
    if sending:
        time.sleep(settings.SENDING["START_WINDOW"])


def normalise_set(values: list[str] | None) -> list[str]:
    """A filter is a set: order and repeats carry no meaning, so store it sorted and unique."""
    return sorted(set(values or []))


def _check_window(*, start_at: datetime, end_at: datetime) -> None:
    if end_at <= start_at:
        raise DomainError("The end of the mailing must be after its start.", field="end_at")
