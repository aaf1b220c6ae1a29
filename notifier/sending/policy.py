"""What happens to a message after an attempt: the retry policy as one table, and the one
rule for when a message may next be attempted (`Schedule.next_attempt_at`).

| outcome      | message becomes                                                          |
|--------------|--------------------------------------------------------------------------|
| Delivered    | `sent`                                                                   |
| Permanent    | `failed`, with the reason                                                |
| Transient    | `pending` again after a backoff capped at the time left, or `expired`    |
|              | once no attempt fits before the end (or the window does not reopen)      |
| Unauthorized | `pending` again after the pause; never failed for our credentials        |
| not started  | `pending` again, the attempt not counted: at once, or at the next        |
|              | opening of its send window                                               |
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from notifier.integrations.probe.client import (
    Delivered,
    Outcome,
    Permanent,
    Transient,
    Unauthorized,
)
from notifier.mailings.models import LAST_ERROR_MAX_LENGTH, Message
from notifier.mailings.windows import SendWindow

# Why a message expired, in its `last_error` (the last error of its attempts follows).
NO_ROOM = "expired: no attempt fits before the end"
OUTSIDE_WINDOW = "expired: its send window does not open again before the end"
NEVER_REACHED = "expired: the mailing ended before it was sent"
ENDED_BEFORE_RETRY = "expired: the mailing ended before its next attempt"


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "full jitter": uniform in [0, min(cap, base * 2**(n-1))],
    so that many messages failing together do not retry together."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 30))
    return rng.uniform(0, max(ceiling, 0.0))


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a message may go out: a request starting before `last_start` (its mailing's
    end, less the end margin and the shortest timeout worth a request) and, when
    its mailing has a send window, while its client's local clock (`zone`) is inside it."""

    last_start: datetime
    window: SendWindow | None = None
    zone: ZoneInfo | None = None

    def next_attempt_at(self, earliest: datetime) -> datetime | None:
        """The first moment from `earliest` on at which the message may be attempted; None
        when there is none before the end. Every condition on when a single message may go
        out is here (those on a whole mailing are `Mailing.may_send`)."""
        at = earliest
        if self.window is not None and self.zone is not None:
            at = self.window.next_opening(earliest, self.zone)
        return at if at < self.last_start else None

    def allows(self, now: datetime) -> bool:
        return self.next_attempt_at(now) == now

    def why_not(self, earliest: datetime) -> str:
        """Why `next_attempt_at(earliest)` is None."""
        return NO_ROOM if earliest >= self.last_start else OUTSIDE_WINDOW


@dataclass(frozen=True, slots=True)
class Settlement:
    """The new state of one claimed message, ready to be written in bulk."""

    id: int
    attempts: int  # the claim's attempt number: fences the write against a newer claim
    status: str
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str = ""
    attempt_counted: bool = True


def settle(
    *,
    message_id: int,
    attempts: int,
    outcome: Outcome,
    now: datetime,
    schedule: Schedule,
    backoff_base: float,
    backoff_max: float,
    auth_pause: float,
    rng: random.Random,
) -> Settlement:
    match outcome:
        case Delivered():
            return Settlement(message_id, attempts, Message.Status.SENT, sent_at=now)
        case Permanent(reason=reason):
            return Settlement(
                message_id, attempts, Message.Status.FAILED, last_error=_storable_error(reason)
            )
        case Unauthorized(reason=reason):
            earliest = now + timedelta(seconds=auth_pause)
            return _retry(message_id, attempts, earliest, schedule, reason)
        case Transient(reason=reason, retry_after=retry_after):
            # Capped at half the time left, so that the last attempts come late in the window
            # rather than never, and another still fits after each.
            room = (schedule.last_start - now).total_seconds()
            delay = backoff(attempts, base=backoff_base, cap=min(backoff_max, room / 2), rng=rng)
            if retry_after is not None:
                delay = max(delay, retry_after)  # the API's wish, even if nothing then fits
            return _retry(message_id, attempts, now + timedelta(seconds=delay), schedule, reason)
    raise AssertionError(f"unknown outcome {outcome!r}")


def release(*, message_id: int, attempts: int) -> Settlement:
    """Give a claimed message back without having sent it, due as it was."""
    return Settlement(message_id, attempts, Message.Status.PENDING, attempt_counted=False)


def postpone(*, message_id: int, attempts: int, now: datetime, schedule: Schedule) -> Settlement:
    """Give back a claimed message that may not go now (its client's window closed since it
    was due): due again at the next opening, the attempt not counted, or expired."""
    at = schedule.next_attempt_at(now)
    if at is None:
        return Settlement(
            message_id,
            attempts,
            Message.Status.EXPIRED,
            last_error=schedule.why_not(now),
            attempt_counted=False,
        )
    return Settlement(
        message_id, attempts, Message.Status.PENDING, next_attempt_at=at, attempt_counted=False
    )


def _retry(
    message_id: int, attempts: int, earliest: datetime, schedule: Schedule, reason: str
) -> Settlement:
    at = schedule.next_attempt_at(earliest)
    if at is None:
        # No later attempt fits: the message will never go out; say why.
        error = _storable_error(f"{schedule.why_not(earliest)}; last error: {reason}")
        return Settlement(message_id, attempts, Message.Status.EXPIRED, last_error=error)
    return Settlement(
        message_id,
        attempts,
        Message.Status.PENDING,
        next_attempt_at=at,
        last_error=_storable_error(reason),
    )


def _storable_error(reason: str) -> str:
    # Text in PostgreSQL cannot hold NUL, which an answer's body may: one would fail the
    # write of a whole batch of outcomes.
    return reason.replace("\x00", "")[:LAST_ERROR_MAX_LENGTH]
