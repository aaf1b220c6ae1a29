"""What happens to a message after an attempt: the retry policy as one table.

| outcome      | message becomes                                                   |
|--------------|-------------------------------------------------------------------|
| Delivered    | `sent`                                                            |
| Permanent    | `failed`, with the reason                                         |
| Transient    | `pending` again after a backoff, or `expired` if that is past end |
| Unauthorized | `pending` again after the pause; never failed for our credentials |
| not started  | `pending` again at once, the attempt not counted                  |
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.integrations.probe.client import (
    Delivered,
    Outcome,
    Permanent,
    Transient,
    Unauthorized,
)
from notifier.mailings.models import LAST_ERROR_MAX_LENGTH, Message


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "full jitter": uniform in [0, min(cap, base * 2**(n-1))],
    so that many messages failing together do not retry together."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 30))
    return rng.uniform(0, ceiling)


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
    end_at: datetime,
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
            return _retry(message_id, attempts, now + timedelta(seconds=auth_pause), end_at, reason)
        case Transient(reason=reason, retry_after=retry_after):
            delay = backoff(attempts, base=backoff_base, cap=backoff_max, rng=rng)
            if retry_after is not None:
                delay = max(delay, retry_after)
            return _retry(message_id, attempts, now + timedelta(seconds=delay), end_at, reason)
    raise AssertionError(f"unknown outcome {outcome!r}")


def release(*, message_id: int, attempts: int) -> Settlement:
    """Give a claimed message back without having sent it."""
    return Settlement(message_id, attempts, Message.Status.PENDING, attempt_counted=False)


def next_attempt_at(*, earliest: datetime, end_at: datetime) -> datetime | None:
    """The one rule for when a message may next be attempted, given the earliest moment the
    outcome of its last attempt allows: None when no attempt fits before the mailing's end.
    Every condition on when a message may go out is a change here (and to the mailing's
    `may_send` for conditions on the whole mailing)."""
    return earliest if earliest < end_at else None


def _retry(
    message_id: int, attempts: int, earliest: datetime, end_at: datetime, reason: str
) -> Settlement:
    error = _storable_error(reason)
    at = next_attempt_at(earliest=earliest, end_at=end_at)
    if at is None:
        # No later attempt fits in the window: the message will never go out.
        return Settlement(message_id, attempts, Message.Status.EXPIRED, last_error=error)
    return Settlement(
        message_id, attempts, Message.Status.PENDING, next_attempt_at=at, last_error=error
    )


def _storable_error(reason: str) -> str:
    # Text in PostgreSQL cannot hold NUL, which an answer's body may: one would fail the
    # write of a whole batch of outcomes.
    return reason.replace("\x00", "")[:LAST_ERROR_MAX_LENGTH]
