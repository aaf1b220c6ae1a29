from django.db import models


class TickClock(models.Model):
    """When the tick last ran (one row): a tick that finds a long gap since knows that leases
    ran out while nobody was watching (the database or beat was down), not because workers
    died; see `tick.renew_leases_after_a_gap`."""

    ran_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"tick at {self.ran_at:%Y-%m-%d %H:%M:%S}"


class AttemptMinute(models.Model):
    """Requests to the external API per minute, by outcome and latency bucket (the bounds of
    `notifier.core.metrics.LATENCY_BUCKETS`, index `len(...)` beyond the last): the API's
    health as the engine saw it, for the console and the daily report. Each send loop
    appends a row per (minute, outcome, bucket) it saw at each write of outcomes; the tick
    folds them into one `base` row each."""

    minute = models.DateTimeField()
    outcome = models.CharField(max_length=16)  # delivered, transient, permanent, unauthorized
    bucket = models.PositiveSmallIntegerField()
    number = models.BigIntegerField(default=0)
    base = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "outcome", "bucket"],
                condition=models.Q(base=True),
                name="attempt_minute_base",
            )
        ]
        indexes = [models.Index(fields=["minute"], name="attempt_minute_idx")]

    def __str__(self) -> str:
        return f"{self.minute:%H:%M} {self.outcome} bucket {self.bucket}: {self.number}"


class Throttle(models.Model):
    """What the workers share of admission control when the broker is not Redis (one row):
    the rate limit's token bucket, and the provider's request to wait (`Retry-After`), with
    the one probe that may go when the wait is over. See `sending.limits`."""

    tokens = models.FloatField(default=0.0)
    refilled_at = models.FloatField()  # wall clock, seconds
    paused_until = models.FloatField(default=0.0)  # wall clock; 0: not paused
    pause_reason = models.CharField(max_length=200, blank=True, default="")
    probe_owner = models.CharField(max_length=200, blank=True, default="")
    probe_until = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"throttle: {self.tokens:.1f} tokens, paused until {self.paused_until}"


class SendLoop(models.Model):
    """What each worker's send loop reports of itself, about once a second while it runs:
    the console's view of the engine (how many requests in flight, the limit it found,
    whether it is held back). A loop not heard of for a few seconds is not running."""

    name = models.CharField(max_length=200, unique=True)  # host-pid
    seen_at = models.DateTimeField()
    in_flight = models.PositiveIntegerField(default=0)
    in_flight_limit = models.PositiveIntegerField(default=0)
    held_back = models.CharField(max_length=200, blank=True, default="")  # why, if it is

    def __str__(self) -> str:
        return f"send loop {self.name}: {self.in_flight}/{self.in_flight_limit}"
