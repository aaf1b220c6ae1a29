"""What the engine saw of the external API, read from its attempts rollup."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Sum

from notifier.core.metrics import LATENCY_BUCKETS, OUTCOMES
from notifier.sending.limits import store_for
from notifier.sending.models import AttemptMinute, SendLoop

# A send loop reports about once a second: one silent for longer is not running.
LOOP_SILENCE = timedelta(seconds=5)


@dataclass(frozen=True)
class ApiHealth:
    attempts: dict[str, int]  # by outcome, every outcome present
    latency_p50: float | None  # seconds: the upper bound of the bucket holding it
    latency_p95: float | None

    @property
    def total(self) -> int:
        return sum(self.attempts.values())

    @property
    def error_rate(self) -> float | None:
        """The share of requests not answered with a delivery or a refusal of the message
        itself: transient failures and refused credentials."""
        if not self.total:
            return None
        failed = self.attempts["transient"] + self.attempts["unauthorized"]
        return failed / self.total


def api_health(*, since: datetime, until: datetime) -> ApiHealth:
    """Requests to the external API in `[since, until)` (whole minutes): how many of each
    outcome, and their latency's median and 95th percentile."""
    rows = (
        AttemptMinute.objects.filter(minute__gte=since, minute__lt=until)
        .values_list("outcome", "bucket")
        .annotate(n=Sum("number"))
        .order_by()
    )
    attempts = dict.fromkeys(OUTCOMES, 0)
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    for outcome, bucket, n in rows:
        attempts[outcome] = attempts.get(outcome, 0) + n
        buckets[bucket] += n
    return ApiHealth(attempts, _quantile(buckets, 0.5), _quantile(buckets, 0.95))


def _quantile(buckets: list[int], q: float) -> float | None:
    total = sum(buckets)
    if not total:
        return None
    seen = 0
    for index, n in enumerate(buckets):
        seen += n
        if seen >= q * total:
            return LATENCY_BUCKETS[index] if index < len(LATENCY_BUCKETS) else math.inf
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class EngineState:
    loops: list[SendLoop]  # the send loops heard of in the last few seconds
    paused_until: datetime | None  # the provider asked every worker to wait until then
    pause_reason: str

    @property
    def in_flight(self) -> int:
        return sum(loop.in_flight for loop in self.loops)

    @property
    def in_flight_limit(self) -> int:
        return sum(loop.in_flight_limit for loop in self.loops)


def engine_state(*, now: datetime, broker_url: str) -> EngineState:
    """The send loops running now, their requests in flight and limits, and a pause the
    provider asked for (from the store the workers share, see `sending.limits`)."""
    loops = list(SendLoop.objects.filter(seen_at__gte=now - LOOP_SILENCE).order_by("name"))
    pause = store_for(broker_url).pause_state()
    if pause is None:
        return EngineState(loops, None, "")
    return EngineState(loops, datetime.fromtimestamp(pause.until, UTC), pause.reason)
