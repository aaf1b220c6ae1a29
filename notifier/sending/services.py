"""The one write path for mailings, and for everything that changes what will be sent: the
API, the console and the management commands call these, never the models directly.

Each of them keeps the engine's promise about stopping: when a call that stops messages
(cancel, delete, an earlier end, removing a client) returns, no request for them starts any
more.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifier.clients.models import Client
from notifier.core import logging
from notifier.mailings.models import Mailing, Message
from notifier.mailings.rules import (
    mailing_check_change,
    mailing_check_new,
    mailing_check_window,
    normalise_set,
)
from notifier.mailings.windows import SendWindow
from notifier.sending.transitions import (
    messages_in_flight,
    messages_transition,
    wait_for_claims_to_start,
)
from notifier.sending.wakeups import START_HORIZON, wake_after_commit

log = logging.get_logger(__name__)


def mailing_create(
    *,
    start_at: datetime,
    end_at: datetime,
    text: str,
    operator_codes: list[str] | None = None,
    tags: list[str] | None = None,
    send_window: SendWindow | None = None,
) -> Mailing:
    """Create a mailing. Sending begins by itself when the window opens; with a send window,
    to each client only while its local time is inside it."""
    mailing_check_new(start_at=start_at, end_at=end_at)
    mailing = Mailing.objects.create(
        start_at=start_at,
        end_at=end_at,
        text=text,
        operator_codes=normalise_set(operator_codes),
        tags=normalise_set(tags),
        **window_fields(send_window),
    )
    logging.bind(mailing_id=mailing.id)
    log.info(
        "mailing created",
        start_at=mailing.start_at,
        end_at=mailing.end_at,
        operator_codes=mailing.operator_codes,
        tags=mailing.tags,
        send_window=str(send_window) if send_window else None,
    )
    _wake_at_start(mailing)
    return mailing


def mailing_update(*, mailing: Mailing, data: dict[str, Any], replace: bool = False) -> Mailing:
    """Change the given fields of a mailing, or with `replace` all of them (a filter not given
    is then cleared). Once it has started, what it sends stays as it was sent: only its end
    time may change, also once finished (to reopen its window); a cancelled mailing changes
    no more (`rules.mailing_check_change`)."""
    if replace:
        data = {"operator_codes": [], "tags": [], "send_window": None, **data}
    if "send_window" in data:
        window = data["send_window"]
        data = {key: value for key, value in data.items() if key != "send_window"}
        data |= window_fields(window)
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
        mailing_check_window(start_at=mailing.start_at, end_at=mailing.end_at)
        mailing.save()
        if "start_at" in changed:
            _wake_at_start(mailing)
        log.info("mailing changed", fields=sorted(changed))
        in_flight = messages_in_flight(mailing.messages.all()) if shortened else 0
    # Messages claimed under the old end time start within the start window, or never.
    wait_for_claims_to_start(in_flight=in_flight)
    return mailing


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
                mailing.messages.filter(status=Message.Status.PENDING),
                to=Message.Status.CANCELLED,
                reason="mailing cancelled",
            )
        in_flight = messages_in_flight(mailing.messages.all())
    wait_for_claims_to_start(in_flight=in_flight)
    return mailing


def mailing_delete(*, mailing: Mailing) -> None:
    """Delete a mailing and its messages; no request for it starts after this returns."""
    mailing_id = mailing.id
    mailing_cancel(mailing=mailing)
    mailing.delete()
    log.info("mailing deleted", mailing_id=mailing_id)


def client_delete(*, client: Client) -> None:
    """Remove a client. Its unsent messages are cancelled; sent ones keep their history
    (each message keeps the phone it was addressed to). No request to it starts after this
    returns."""
    logging.bind(client_id=client.id)
    with transaction.atomic():
        messages_transition(
            client.messages.filter(status=Message.Status.PENDING),
            to=Message.Status.CANCELLED,
            reason="client deleted",
        )
        in_flight = messages_in_flight(client.messages.all())
        client.delete()
    log.info("client deleted", messages_in_flight=in_flight)
    wait_for_claims_to_start(in_flight=in_flight)


def window_fields(window: SendWindow | None) -> dict[str, Any]:
    """A send window as the mailing's two fields."""
    return {
        "send_window_start": window.start if window else None,
        "send_window_end": window.end if window else None,
    }


def _wake_at_start(mailing: Mailing) -> None:
    """Ask a worker to start the mailing at its start time, if that is now or very soon;
    later starts are found by the tick."""
    lead = (mailing.start_at - timezone.now()).total_seconds()
    if lead <= START_HORIZON:
        eta = mailing.start_at if lead > 0 else None
        wake_after_commit("sending.start_mailing", mailing.id, eta=eta)
