"""The message state machine outside the send loop: every change of a message's status that
is not a claim or the outcome of an attempt (those are set-based statements in `queries`).

Each move is logged per message (its id, mailing and client) for the record of what happened
to every message, and counted in the metrics of final statuses.
"""

import time
from collections import Counter
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from notifier.core import logging, metrics
from notifier.mailings.models import Message

log = logging.get_logger(__name__)
CHUNK = 5000


def messages_transition(
    messages: QuerySet[Message], *, to: str, reason: str, **changes: Any
) -> Counter[int]:
    """Move the given messages to status `to`, in chunks, so that a million cost no more
    memory than a few thousand. Returns how many moved, by mailing."""
    moved: Counter[int] = Counter()
    while True:
        with transaction.atomic():
            rows = list(
                messages.select_for_update(skip_locked=True)
                .order_by()
                .values_list("id", "mailing_id", "client_id", "status")[:CHUNK]
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


def messages_in_flight(messages: QuerySet[Message]) -> int:
    """How many of these messages a worker holds (claimed, `sending`) right now."""
    return messages.filter(status=Message.Status.SENDING).count()


def wait_for_claims_to_start(*, in_flight: int) -> None:
    """After a change that stops claims (cancel, delete, an earlier end, a removed client),
    wait until every message claimed before it has either started its request or been
    released: a worker never starts a request more than `start_window` after claiming it,
    and re-reads nothing in between. Nothing to wait for when nothing was in flight."""
    if in_flight:
        time.sleep(settings.SENDING["START_WINDOW"])
