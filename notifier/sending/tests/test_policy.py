"""The retry policy as a table: pure functions, no database, milliseconds."""

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from notifier.integrations.probe.client import Delivered, Permanent, Transient, Unauthorized
from notifier.mailings.models import LAST_ERROR_MAX_LENGTH, Message
from notifier.sending.policy import backoff, release, settle

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FAR_END = NOW + timedelta(days=1)
BASE, CAP, AUTH_PAUSE = 1.0, 60.0, 5.0


def _settle(outcome, *, attempts=1, end_at=FAR_END, seed=0, **knobs):
    kwargs = {"backoff_base": BASE, "backoff_max": CAP, "auth_pause": AUTH_PAUSE, **knobs}
    return settle(
        message_id=42,
        attempts=attempts,
        outcome=outcome,
        now=NOW,
        end_at=end_at,
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
    assert at_end.last_error == "HTTP 503"
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
