"""What the engine saw of the external API, read from its attempts rollup."""

import math
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Sum

from notifier.core.metrics import LATENCY_BUCKETS, OUTCOMES
from notifier.sending.models import AttemptMinute


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
