"""The periodic sweep that makes broker messages mere wake-ups: everything the engine must do
is found here from the database alone, one named step each. Idempotent and safe to run
concurrently (a second beat by mistake costs only duplicate wake-ups)."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.db.models.functions import Concat, Substr

from notifier.core import logging
from notifier.mailings.models import (
    LAST_ERROR_MAX_LENGTH,
    Mailing,
    MailingQuerySet,
    Message,
    may_send_q,
)
from notifier.sending import policy, queries
from notifier.sending.models import TickClock
from notifier.sending.transitions import messages_transition

log = logging.get_logger(__name__)
S = Message.Status
DEAD_CLAIM = "lease expired: the worker sending it stopped"
# Ticks come every second; a longer silence means nobody was watching the leases.
GAP = timedelta(seconds=5)


@dataclass(frozen=True)
class TickReport:
    to_start: list[int]
    starting_soon: list[tuple[int, datetime]]
    reclaimed: int
    expired: Counter[int]  # by mailing
    cancelled: int
    finished: list[int]
    due: bool


def run(*, now: datetime, horizon: float, lease: float) -> TickReport:
    """Every step, in this order: what to start is read before anything moves, and what is
    due is read after."""
    renew_leases_after_a_gap(now=now, lease=lease)
    to_start = mailings_to_start(now=now)
    starting_soon = mailings_starting_soon(now=now, horizon=horizon)
    reclaimed = requeue_dead_claims(now=now)
    expired = expire_ended(now=now)
    cancelled = cancel_stopped(now=now)
    finished = finish_done(now=now)
    compact_counts()
    return TickReport(
        to_start, starting_soon, reclaimed, expired, cancelled, finished, work_due(now=now)
    )


def _unfinished() -> MailingQuerySet:
    return Mailing.objects.filter(finished_at=None)


def mailings_to_start(*, now: datetime) -> list[int]:
    """Mailings whose window is open and whose messages do not exist yet."""
    return list(
        _unfinished()
        .may_send(now)
        .filter(fanned_out_at=None)
        .order_by("start_at")
        .values_list("id", flat=True)
    )


def mailings_starting_soon(*, now: datetime, horizon: float) -> list[tuple[int, datetime]]:
    """Mailings that start within `horizon` seconds: a wake-up timed to their start."""
    return list(
        _unfinished()
        .filter(
            cancelled_at=None,
            fanned_out_at=None,
            start_at__gt=now,
            start_at__lte=now + timedelta(seconds=horizon),
        )
        .values_list("id", "start_at")
    )


def renew_leases_after_a_gap(*, now: datetime, lease: float) -> int:
    """After a silence of the tick (the database, or beat, was down), a lease that ran out
    proves nothing: its worker may be alive and only have been unable to write its outcome,
    which it does as soon as the database answers. Requeueing such a claim would send a
    delivered message again, so every claim first gets a full lease from now. Returns how
    many were renewed. The very first tick knows of no earlier one and renews too."""
    with transaction.atomic():
        clock = TickClock.objects.select_for_update().filter(id=1).first()
        if clock is None:
            clock = TickClock.objects.create(id=1, ran_at=now - 2 * GAP)
        gap = now - clock.ran_at
        if gap > timedelta(0):
            clock.ran_at = now
            clock.save(update_fields=["ran_at"])
    if gap <= GAP:
        return 0
    renewed = Message.objects.filter(
        status=S.SENDING, lease_until__lt=now + timedelta(seconds=lease)
    ).update(lease_until=now + timedelta(seconds=lease))
    log.warning(
        "the tick had not run for a while: claims get a new lease before being presumed dead",
        gap_seconds=round(gap.total_seconds(), 1),
        claims_renewed=renewed,
    )
    return renewed


def requeue_dead_claims(*, now: datetime) -> int:
    """Claims whose worker died (their lease ran out) go back to the queue while their
    mailing may still send them; otherwise `expire_ended` or `cancel_stopped` ends them."""
    return messages_transition(
        Message.objects.filter(
            may_send_q(now, prefix="mailing__"),
            status=S.SENDING,
            lease_until__lt=now,
            client__isnull=False,
        ),
        to=S.PENDING,
        reason=DEAD_CLAIM,
        lease_until=None,
        next_attempt_at=now,
        last_error=DEAD_CLAIM,
    ).total()


def _left_over(now: datetime) -> Q:
    """Messages nobody will send: pending, or claimed by a worker that died. A live claim
    is left to its worker, which records its outcome."""
    return Q(status=S.PENDING) | Q(status=S.SENDING, lease_until__lt=now)


def expire_ended(*, now: datetime) -> Counter[int]:
    """What is left of a mailing at its end expires, saying why: never tried, or waiting
    for its next attempt (after the last error). Returns how many, by mailing."""
    ended = _unfinished().filter(cancelled_at=None, end_at__lte=now).values("id")
    why = Case(
        When(attempts=0, then=Value(policy.NEVER_REACHED)),
        default=Substr(
            Concat(Value(f"{policy.ENDED_BEFORE_RETRY}; last error: "), "last_error"),
            1,
            LAST_ERROR_MAX_LENGTH,
        ),
    )
    return messages_transition(
        Message.objects.filter(_left_over(now), mailing__in=ended),
        to=S.EXPIRED,
        reason="the mailing ended",
        lease_until=None,
        last_error=why,
    )


def cancel_stopped(*, now: datetime) -> int:
    """What is left of a cancelled mailing, or of a deleted client, is cancelled."""
    unfinished = _unfinished()
    cancelled = messages_transition(
        Message.objects.filter(
            _left_over(now), mailing__in=unfinished.filter(cancelled_at__isnull=False)
        ),
        to=S.CANCELLED,
        reason="the mailing was cancelled",
        lease_until=None,
    )
    cancelled.update(
        messages_transition(
            Message.objects.filter(
                _left_over(now), client__isnull=True, mailing__in=unfinished.values("id")
            ),
            to=S.CANCELLED,
            reason="the client was deleted",
            lease_until=None,
        )
    )
    return cancelled.total()


def finish_done(*, now: datetime) -> list[int]:
    """A mailing is finished when nothing of it is pending or in flight, and it has been
    fanned out (sent through to the last message), ended or cancelled."""
    active = Message.objects.filter(mailing=OuterRef("pk"), status__in=Message.ACTIVE_STATUSES)
    done = _unfinished().filter(
        ~Exists(active)
        & (Q(fanned_out_at__isnull=False) | Q(end_at__lte=now) | Q(cancelled_at__isnull=False))
    )
    finished = list(done.values_list("id", flat=True))
    if finished:
        Mailing.objects.filter(id__in=finished, finished_at=None).update(finished_at=now)
    return finished


def compact_counts() -> int:
    """Fold the delta rows of the counts and the per-minute rollups, so that reading them
    stays a few rows per mailing (and minute)."""
    return queries.rollups_compact()


def work_due(*, now: datetime) -> bool:
    """Whether a live mailing has a message due now (then the send loops are woken)."""
    return Message.objects.filter(
        status=S.PENDING,
        next_attempt_at__lte=now,
        client__isnull=False,
        mailing__in=queries.live_mailing_ids(now=now),
    ).exists()
