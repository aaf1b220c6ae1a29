"""The API's health as the engine saw it, from the attempts rollup."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from notifier.core.metrics import LATENCY_BUCKETS
from notifier.sending import queries
from notifier.sending.limits import DatabaseStore
from notifier.sending.models import SendLoop
from notifier.sending.selectors import api_health, engine_state

pytestmark = pytest.mark.django_db

NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def bucket(seconds: float) -> int:
    return LATENCY_BUCKETS.index(seconds)


def test_counts_error_rate_and_percentiles_over_a_period():
    queries.attempts_record(
        {
            (NOON, "delivered", bucket(0.05)): 90,
            (NOON + timedelta(minutes=1), "delivered", bucket(0.1)): 5,
            (NOON, "transient", bucket(1)): 4,
            (NOON, "unauthorized", bucket(0.01)): 1,
            (NOON - timedelta(minutes=1), "transient", bucket(30)): 1000,  # before the period
        }
    )

    health = api_health(since=NOON, until=NOON + timedelta(minutes=2))

    assert health.attempts == {"delivered": 95, "transient": 4, "permanent": 0, "unauthorized": 1}
    assert health.total == 100
    assert health.error_rate == pytest.approx(0.05)
    assert (health.latency_p50, health.latency_p95) == (0.05, 0.1)


def test_nothing_seen_is_no_rate_and_a_latency_past_the_last_bucket_is_infinite():
    assert api_health(since=NOON, until=NOON + timedelta(minutes=1)).error_rate is None
    queries.attempts_record({(NOON, "transient", len(LATENCY_BUCKETS)): 1})
    assert math.isinf(api_health(since=NOON, until=NOON + timedelta(minutes=1)).latency_p95)


def test_the_engine_state_shows_running_loops_and_a_shared_pause():
    now = datetime.now(UTC)
    SendLoop.objects.create(name="a", seen_at=now, in_flight=30, in_flight_limit=40)
    SendLoop.objects.create(
        name="b", seen_at=now - timedelta(seconds=1), in_flight=5, in_flight_limit=20
    )
    SendLoop.objects.create(name="gone", seen_at=now - timedelta(minutes=1), in_flight=9)
    DatabaseStore().pause(now.timestamp() + 2, "HTTP 429, Retry-After: 2")

    state = engine_state(now=now, broker_url="filesystem://localhost/")

    assert [loop.name for loop in state.loops] == ["a", "b"]
    assert (state.in_flight, state.in_flight_limit) == (35, 60)
    assert state.pause_reason == "HTTP 429, Retry-After: 2"
    assert state.paused_until is not None
    assert abs((state.paused_until - now).total_seconds() - 2) < 0.01
