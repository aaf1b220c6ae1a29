"""The retry policy as a table: pure functions, no database, milliseconds."""

import itertools
import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier.integrations.probe.client import Delivered, Permanent, Transient, Unauthorized
from notifier.mailings.models import LAST_ERROR_MAX_LENGTH, Message
from notifier.mailings.windows import SendWindow
from notifier.sending.policy import Schedule, backoff, postpone, release, settle

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FAR_END = NOW + timedelta(days=1)
BASE, CAP, AUTH_PAUSE = 1.0, 60.0, 5.0


def _settle(outcome, *, attempts=1, end_at=FAR_END, seed=0, **knobs):
    """Settle with `end_at` as the last moment a request may start."""
    kwargs = {"backoff_base": BASE, "backoff_max": CAP, "auth_pause": AUTH_PAUSE, **knobs}
    return settle(
        message_id=42,
        attempts=attempts,
        outcome=outcome,
        now=NOW,
        schedule=Schedule(last_start=end_at),
        rng=random.Random(seed),
        **kwargs,
    )


# -- backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 7])
def test_backoff_stays_within_full_jitter_bounds(attempt):
    rng = random.Random(attempt)
    ceiling = min(CAP, BASE * 2 ** (attempt - 1))
    delays = [backoff(attempt, base=BASE, cap=CAP, rng=rng) for _ in range(2000)]
    assert all(0 <= d <= ceiling for d in delays)
    # Full jitter spreads over the whole range, not only near the ceiling.
    assert min(delays) < ceiling * 0.05
    assert max(delays) > ceiling * 0.95


def test_backoff_grows_with_the_attempt_number():
    """The mean delay doubles per attempt until the cap: retries thin out over time."""

    def mean(attempt: int) -> float:
        rng = random.Random(1)
        return sum(backoff(attempt, base=BASE, cap=CAP, rng=rng) for _ in range(4000)) / 4000

    means = [mean(n) for n in (1, 2, 3, 4, 5)]
    for earlier, later in itertools.pairwise(means):
        assert later == pytest.approx(2 * earlier, rel=0.15)


@pytest.mark.parametrize("attempt", [7, 30, 31, 64, 10_000, 10**9])
def test_backoff_respects_the_cap_for_huge_attempt_numbers(attempt):
    rng = random.Random(3)
    delays = [backoff(attempt, base=BASE, cap=CAP, rng=rng) for _ in range(500)]
    assert all(0 <= d <= CAP for d in delays)
    assert max(delays) > CAP * 0.9


# -- settle ----------------------------------------------------------------------------------


def test_delivered_becomes_sent_with_the_time_of_the_outcome():
    s = _settle(Delivered(latency=0.01), attempts=3)
    assert (s.id, s.attempts, s.status) == (42, 3, Message.Status.SENT)
    assert s.sent_at == NOW
    assert s.next_attempt_at is None
    assert s.last_error == ""
    assert s.attempt_counted


def test_permanent_becomes_failed_with_the_reason():
    s = _settle(Permanent("HTTP 400", latency=0.01), attempts=2)
    assert (s.id, s.attempts, s.status) == (42, 2, Message.Status.FAILED)
    assert s.last_error == "HTTP 400"
    assert s.sent_at is None
    assert s.attempt_counted


@pytest.mark.parametrize("attempts", [1, 2, 4, 9])
def test_transient_is_retried_after_a_backoff_within_bounds(attempts):
    ceiling = min(CAP, BASE * 2 ** (attempts - 1))
    for seed in range(50):
        s = _settle(Transient("HTTP 503", latency=0.01), attempts=attempts, seed=seed)
        assert s.status == Message.Status.PENDING
        assert s.attempts == attempts
        assert s.last_error == "HTTP 503"
        assert s.sent_at is None
        assert s.next_attempt_at is not None
        assert NOW <= s.next_attempt_at <= NOW + timedelta(seconds=ceiling)


def test_transient_retry_delays_are_jittered():
    """Messages that failed together do not all come back at the same instant."""
    times = {
        _settle(Transient("HTTP 500", latency=0), attempts=5, seed=seed).next_attempt_at
        for seed in range(20)
    }
    assert len(times) > 15


@pytest.mark.parametrize("retry_after", [0.0, 3.0, 30.0, 600.0])
def test_retry_after_is_honoured(retry_after):
    """The server's Retry-After is a floor under the backoff, never shortened by jitter."""
    for seed in range(30):
        s = _settle(Transient("HTTP 429", latency=0, retry_after=retry_after), seed=seed)
        assert s.status == Message.Status.PENDING
        assert s.next_attempt_at is not None
        assert s.next_attempt_at >= NOW + timedelta(seconds=retry_after)
        assert s.next_attempt_at <= NOW + timedelta(seconds=max(retry_after, BASE))


def test_a_retry_that_would_land_at_or_after_the_end_expires():
    retry_after = 10.0
    outcome = Transient("HTTP 503", latency=0, retry_after=retry_after)
    at_end = _settle(outcome, end_at=NOW + timedelta(seconds=retry_after))
    assert at_end.status == Message.Status.EXPIRED
    assert at_end.last_error == "expired: no attempt fits before the end; last error: HTTP 503"
    assert at_end.next_attempt_at is None

    past_end = _settle(outcome, end_at=NOW + timedelta(seconds=1))
    assert past_end.status == Message.Status.EXPIRED

    inside = _settle(outcome, end_at=NOW + timedelta(seconds=retry_after + 1))
    assert inside.status == Message.Status.PENDING


def test_a_transient_failure_at_the_very_end_expires_whatever_the_jitter():
    for seed in range(30):
        s = _settle(Transient("timeout after 0.1s", latency=0.1), end_at=NOW, seed=seed)
        assert s.status == Message.Status.EXPIRED


def test_unauthorized_pauses_and_never_fails():
    s = _settle(Unauthorized("HTTP 401", latency=0.01), attempts=6)
    assert s.status == Message.Status.PENDING
    assert s.next_attempt_at == NOW + timedelta(seconds=AUTH_PAUSE)
    assert s.last_error == "HTTP 401"
    assert s.attempt_counted


def test_unauthorized_after_the_end_expires_rather_than_fails():
    s = _settle(Unauthorized("HTTP 403", latency=0), end_at=NOW + timedelta(seconds=1))
    assert s.status == Message.Status.EXPIRED


def test_release_gives_the_message_back_without_counting_the_attempt():
    s = release(message_id=7, attempts=3)
    assert (s.id, s.attempts, s.status) == (7, 3, Message.Status.PENDING)
    assert s.attempt_counted is False
    assert s.sent_at is None
    # No new time: the message stays as due as it was.
    assert s.next_attempt_at is None


@pytest.mark.parametrize(
    "outcome",
    [
        Permanent("x" * 5000, latency=0),
        Transient("x" * 5000, latency=0),
        Unauthorized("x" * 5000, latency=0),
    ],
    ids=["permanent", "transient", "unauthorized"],
)
def test_last_error_is_cut_to_the_column_length(outcome):
    s = _settle(outcome)
    assert len(s.last_error) == LAST_ERROR_MAX_LENGTH
    assert s.last_error == outcome.reason[:LAST_ERROR_MAX_LENGTH]


@pytest.mark.parametrize("kind", [Permanent, Transient, Unauthorized])
def test_last_error_never_carries_a_nul_character(kind):
    # An answer's body may hold one; PostgreSQL's text cannot, and the write of the whole
    # batch of outcomes would fail with it, again and again.
    s = _settle(kind("HTTP 400: a\x00b", latency=0))
    assert s.last_error == "HTTP 400: ab"


# -- retries until the end -------------------------------------------------------------------


@pytest.mark.parametrize("left", [0.5, 3.0, 18.0, 45.0])
def test_a_late_transient_failure_is_retried_within_the_time_left(left):
    """The 10th attempt failing 18 s before the end used to draw a backoff of up to a minute
    and expire; the backoff is capped at half the time left, so another attempt comes, and
    one more still fits after it."""
    last_start = NOW + timedelta(seconds=left)
    for seed in range(200):
        s = _settle(Transient("HTTP 503", latency=0), attempts=10, end_at=last_start, seed=seed)
        assert s.status == Message.Status.PENDING
        assert s.next_attempt_at is not None
        assert NOW <= s.next_attempt_at <= NOW + timedelta(seconds=left / 2)


def test_retries_keep_coming_until_the_very_end():
    """Failing every time (each attempt taking 0.2 s), a message is tried again and again,
    ever closer to the end, and expires only when no attempt fits any more."""
    last_start = NOW + timedelta(seconds=20)
    now, attempts, times = NOW, 10, []
    rng = random.Random(5)
    while True:
        s = settle(
            message_id=1,
            attempts=attempts,
            outcome=Transient("HTTP 500", latency=0),
            now=now,
            schedule=Schedule(last_start=last_start),
            backoff_base=BASE,
            backoff_max=CAP,
            auth_pause=AUTH_PAUSE,
            rng=rng,
        )
        if s.status == Message.Status.EXPIRED:
            break
        assert s.next_attempt_at is not None
        times.append(s.next_attempt_at)
        now, attempts = s.next_attempt_at + timedelta(seconds=0.2), attempts + 1
    assert len(times) >= 8
    assert last_start - times[-1] < timedelta(seconds=1)
    assert s.last_error.startswith("expired: no attempt fits before the end")


def test_retry_after_beyond_the_end_expires_saying_why():
    s = _settle(
        Transient("HTTP 429", latency=0, retry_after=30),
        end_at=NOW + timedelta(seconds=10),
    )
    assert s.status == Message.Status.EXPIRED
    assert s.last_error.startswith("expired: no attempt fits before the end")


# -- the send window -------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE_HOURS = SendWindow(time(9, 0), time(18, 0))


def test_a_retry_outside_the_window_waits_for_its_next_opening():
    # 12:00 UTC is 13:00 in Berlin; a one-hour pause lands at 14:00, inside; a 6-hour one
    # at 19:00, after the window closed: the next morning at 09:00 instead.
    schedule = Schedule(last_start=NOW + timedelta(days=3), window=OFFICE_HOURS, zone=BERLIN)
    inside = schedule.next_attempt_at(NOW + timedelta(hours=1))
    assert inside == NOW + timedelta(hours=1)
    assert schedule.next_attempt_at(NOW + timedelta(hours=6)) == datetime(
        2030, 1, 2, 8, 0, tzinfo=UTC
    )


def test_a_window_that_does_not_open_again_before_the_end_expires_the_retry():
    schedule = Schedule(last_start=NOW + timedelta(hours=10), window=OFFICE_HOURS, zone=BERLIN)
    s = settle(
        message_id=1,
        attempts=1,
        outcome=Unauthorized("HTTP 401", latency=0),
        now=NOW,
        schedule=schedule,
        backoff_base=BASE,
        backoff_max=CAP,
        auth_pause=6 * 3600,  # back at 19:00 Berlin, closed until after the end
        rng=random.Random(1),
    )
    assert s.status == Message.Status.EXPIRED
    assert s.last_error.startswith("expired: its send window does not open again before the end")


def test_postpone_gives_a_claim_back_for_the_next_opening_without_counting_it():
    evening = datetime(2030, 1, 1, 19, 0, tzinfo=UTC)  # 20:00 in Berlin: closed
    schedule = Schedule(last_start=evening + timedelta(days=1), window=OFFICE_HOURS, zone=BERLIN)

    s = postpone(message_id=3, attempts=2, now=evening, schedule=schedule)

    assert (s.status, s.attempt_counted) == (Message.Status.PENDING, False)
    assert s.next_attempt_at == datetime(2030, 1, 2, 8, 0, tzinfo=UTC)
    too_late = Schedule(last_start=evening + timedelta(hours=3), window=OFFICE_HOURS, zone=BERLIN)
    expired = postpone(message_id=3, attempts=2, now=evening, schedule=too_late)
    assert expired.status == Message.Status.EXPIRED
    assert "send window" in expired.last_error
