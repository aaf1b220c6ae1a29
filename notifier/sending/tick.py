"""The periodic sweep that makes broker messages mere wake-ups: everything the engine must do
is found here from the database alone, one named step each. Idempotent and safe to run
concurrently (a second beat by mistake costs only duplicate wake-ups)."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q

from notifier.mailings.models import Mailing, MailingQuerySet, Message, may_send_q
from notifier.sending import queries
from notifier.sending.transitions import messages_transition

S = Message.Status
DEAD_CLAIM = "lease expired: the worker sending it stopped"


@dataclass(frozen=True)
class TickReport:
    to_start: list[int]
    starting_soon: list[tuple[int, datetime]]
    reclaimed: int
    expired: Counter[int]  # by mailing
    cancelled: int
    finished: list[int]
    due: bool


def run(*, now: datetime, horizon: float) -> TickReport:
    """Every step, in this order: what to start is read before anything moves, and what is
    due is read after."""
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
    """What is left of a mailing at its end expires. Returns how many, by mailing."""
    ended = _unfinished().filter(cancelled_at=None, end_at__lte=now).values("id")
    return messages_transition(
        Message.objects.filter(_left_over(now), mailing__in=ended),
        to=S.EXPIRED,
        reason="the mailing ended",
        lease_until=None,
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
    """Fold the statistics' delta rows, so that reading them stays a few rows per mailing."""
    return queries.message_counts_compact()


def work_due(*, now: datetime) -> bool:
    """Whether a live mailing has a message due now (then the send loops are woken)."""
    return Message.objects.filter(
        status=S.PENDING,
        next_attempt_at__lte=now,
        client__isnull=False,
        mailing__in=queries.live_mailing_ids(now=now),
    ).exists()
