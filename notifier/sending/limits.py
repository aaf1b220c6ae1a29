"""Admission control of the send loop: how many requests a worker may have in flight (found
as it goes, not fixed), how fast all workers together may send (`SENDING_RATE_LIMIT`), and
when the provider has asked everyone to wait (a 429 or 503 with `Retry-After`).

What the workers share lives in one small store: Redis when the broker is Redis, otherwise
one row of the database. Each worker leases rate tokens in batches and spends them locally,
and looks at the shared pause at most every `CHECK_EVERY`: neither is on the per-request path.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import redis
from django.db import transaction

from notifier.core import logging, metrics
from notifier.integrations.probe.client import Outcome, Transient
from notifier.sending.models import Throttle

log = logging.get_logger(__name__)

CHECK_EVERY = 0.1  # seconds between looks at the shared pause
LEASE = 0.05  # seconds of the rate limit one lease of tokens is worth
PROBE_LEASE = 10.0  # a probe not reported in this long is presumed lost: another may probe


# -- the shared store ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    until: float  # wall clock (time.time())
    reason: str
    probing: bool  # a probe may go once `until` has passed; nothing else until it answers


class Store(Protocol):
    def take(self, wanted: int, *, rate: float, burst: float) -> int:
        """Up to `wanted` tokens of the shared bucket (refilled at `rate` per second, at most
        `burst` held); returns how many were granted."""

    def pause(self, until: float, reason: str) -> None:
        """Everyone waits until `until` at least, then one probe goes first."""

    def pause_state(self) -> Pause | None: ...

    def claim_probe(self, owner: str) -> bool:
        """Whether `owner` may send the one probe after a pause (first come)."""

    def resume(self) -> None:
        """A probe got through: sending resumes everywhere."""


class DatabaseStore:
    """The shared state in one row (`Throttle`), read and written under its row lock."""

    def _row(self) -> Throttle:
        row = Throttle.objects.select_for_update().filter(id=1).first()
        # A new bucket starts full, as the Redis one does.
        return row or Throttle.objects.create(id=1, tokens=1e9, refilled_at=time.time())

    def take(self, wanted: int, *, rate: float, burst: float) -> int:
        with transaction.atomic():
            row = self._row()
            now = time.time()
            tokens = min(burst, row.tokens + max(0.0, now - row.refilled_at) * rate)
            granted = min(wanted, int(tokens))
            row.tokens, row.refilled_at = tokens - granted, now
            row.save(update_fields=["tokens", "refilled_at"])
            return granted

    def pause(self, until: float, reason: str) -> None:
        with transaction.atomic():
            row = self._row()
            if until > row.paused_until:
                row.paused_until, row.pause_reason, row.probe_owner = until, reason, ""
                row.save(update_fields=["paused_until", "pause_reason", "probe_owner"])

    def pause_state(self) -> Pause | None:
        row = Throttle.objects.filter(id=1).first()
        if row is None or not row.paused_until:
            return None
        return Pause(row.paused_until, row.pause_reason, probing=True)

    def claim_probe(self, owner: str) -> bool:
        with transaction.atomic():
            row = self._row()
            now = time.time()
            if row.probe_owner and row.probe_until > now:
                return row.probe_owner == owner
            row.probe_owner, row.probe_until = owner, now + PROBE_LEASE
            row.save(update_fields=["probe_owner", "probe_until"])
            return True

    def resume(self) -> None:
        Throttle.objects.filter(id=1).update(paused_until=0.0, pause_reason="", probe_owner="")


# Refill, then grant: KEYS[1] the bucket; ARGV now, rate, burst, wanted.
_TAKE = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[3])
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or ARGV[1])
tokens = math.min(tonumber(ARGV[3]), tokens + math.max(0, ARGV[1] - at) * ARGV[2])
local granted = math.min(tonumber(ARGV[4]), math.floor(tokens))
redis.call('HSET', KEYS[1], 'tokens', tokens - granted, 'at', ARGV[1])
redis.call('EXPIRE', KEYS[1], 3600)
return granted
"""


class RedisStore:
    """The shared state in three keys of the broker's Redis."""

    BUCKET, PAUSE, PROBE = "notifier:rate", "notifier:pause", "notifier:probe"

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._take = self.redis.register_script(_TAKE)

    def take(self, wanted: int, *, rate: float, burst: float) -> int:
        return int(self._take(keys=[self.BUCKET], args=[time.time(), rate, burst, wanted]))

    def pause(self, until: float, reason: str) -> None:
        current = self.pause_state()
        if current is None or until > current.until:
            ttl = max(1, math.ceil((until - time.time() + PROBE_LEASE) * 1000))
            pipe = self.redis.pipeline()
            pipe.set(self.PAUSE, f"{until}|{reason}", px=ttl)
            pipe.delete(self.PROBE)
            pipe.execute()

    def pause_state(self) -> Pause | None:
        value = self.redis.get(self.PAUSE)
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        until, _, reason = text.partition("|")
        return Pause(float(until), reason, probing=True)

    def claim_probe(self, owner: str) -> bool:
        if self.redis.set(self.PROBE, owner, nx=True, px=int(PROBE_LEASE * 1000)):
            return True
        return self.redis.get(self.PROBE) == owner.encode()

    def resume(self) -> None:
        self.redis.delete(self.PAUSE, self.PROBE)


def store_for(broker_url: str) -> Store:
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisStore(broker_url)
    return DatabaseStore()


# -- the concurrency limit -------------------------------------------------------------------


@dataclass
class ConcurrencyLimit:
    """The in-flight limit of one worker, found as it sends (AIMD with a start like TCP's):
    it doubles while every slot is busy and nothing pushes back; the first push-back (a
    429, a 503, a timeout, or a latency four times the lowest seen lately) halves it, each
    later one takes a tenth off (once per window), and in between it grows by a quarter of
    its square root per window. A pause the provider asked for halves it too. Never above
    `maximum` (`SENDING_IN_FLIGHT`)."""

    maximum: int
    initial: int = 20
    window: float = 0.1  # seconds of samples per adjustment
    limit: float = field(init=False)
    starting: bool = field(init=False, default=True)  # no push-back seen yet
    _window_start: float = field(init=False, default=0.0)
    _samples: int = field(init=False, default=0)
    _latency_sum: float = field(init=False, default=0.0)
    _busiest: int = field(init=False, default=0)
    _overloaded: bool = field(init=False, default=False)
    _baseline: float = field(init=False, default=math.inf)  # the lowest window mean lately
    _baseline_at: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.limit = float(min(self.initial, self.maximum))

    @property
    def value(self) -> int:
        return max(1, int(self.limit))

    def back_off(self, factor: float) -> None:
        self.limit = max(1.0, self.limit * factor)
        self.starting = False
        metrics.in_flight_limit.set(self.value)

    def sample(self, latency: float, *, in_flight: int, overloaded: bool, now: float) -> None:
        """One answer (or timeout) and how many requests were under way when it came."""
        if overloaded and not self._overloaded:
            # At once, not at the window's end: a refusal comes back in a millisecond, and a
            # lane over the limit would fire the next request into the next refusal.
            self.back_off(0.5 if self.starting else 0.9)
            self._overloaded = True
            return
        self._samples += 1
        self._latency_sum += latency
        self._busiest = max(self._busiest, in_flight + 1)
        if now - self._window_start >= self.window:
            self._adjust(now)

    def _adjust(self, now: float) -> None:
        mean = self._latency_sum / self._samples
        if mean < self._baseline or now - self._baseline_at > 30:
            self._baseline, self._baseline_at = mean, now
        # Queueing at the provider, not the ordinary rise of a busy connection: four times the
        # lowest latency lately, and a tenth of a second above it.
        slower = mean > max(4 * self._baseline, self._baseline + 0.1)
        if self._overloaded:
            pass  # already backed off in this window
        elif slower:
            self.back_off(0.5 if self.starting else 0.9)
        elif self._busiest >= 0.8 * self.limit:  # the limit, not the work, held it back
            if self.starting:
                grown = self.limit * 2
            else:
                grown = self.limit + max(1.0, math.sqrt(self.limit) / 4)
            self.limit = min(float(self.maximum), grown)
        self._window_start, self._samples, self._latency_sum = now, 0, 0.0
        self._busiest, self._overloaded = 0, False
        metrics.in_flight_limit.set(self.value)


# -- the rate limit --------------------------------------------------------------------------


@dataclass
class RateLimit:
    """This worker's share of `SENDING_RATE_LIMIT`: tokens leased from the shared bucket in
    batches of `LEASE` seconds' worth, kept for the next claim when not all were used."""

    rate: float
    held: int = 0

    @property
    def lease(self) -> int:
        return max(1, round(self.rate * LEASE))

    @property
    def burst(self) -> float:
        # Small: within any second, the API sees at most the rate and one lease more.
        return max(1.0, self.rate * LEASE)


# -- admission: all three, for one worker process -----------------------------------------


def overload(outcome: Outcome) -> bool:
    """The provider pushing back: 429, 503 or a timeout."""
    return isinstance(outcome, Transient) and (
        outcome.status in (429, 503)
        or (outcome.status is None and outcome.reason.startswith("timeout"))
    )


class Admission:
    """What one worker may send: its concurrency limit (learnt over its life, so it outlives
    a dispatch run), its lease of the shared rate limit, and the shared pause. The methods
    that touch the store run on the send loop's claims thread."""

    def __init__(self, *, in_flight: int, rate_limit: float, store: Store, owner: str) -> None:
        self.concurrency = ConcurrencyLimit(maximum=in_flight)
        self.rate = RateLimit(rate_limit) if rate_limit > 0 else None
        self.store = store
        self.owner = owner
        self.pause: Pause | None = None  # as last read, or set by this worker's own 429
        self.probing = False  # this worker's probe is under way
        self.rate_wait = 0.0  # seconds until the rate limit grants another token
        self._checked_at = 0.0

    def paused(self, now: float) -> bool:
        """Whether a request may not start now (the pause, or its probe, holds)."""
        return self.pause is not None and (now < self.pause.until or not self.probing)

    def admit(self, wanted: int, *, outstanding: int) -> int:
        """How many of `wanted` messages may be claimed now (on the claims thread); when the
        rate limit holds some back, `rate_wait` says how long until the next token."""
        self.rate_wait = 0.0
        now = time.time()
        if now - self._checked_at >= CHECK_EVERY:
            self._checked_at = now
            pause = self.store.pause_state()
            if pause is not None and (self.pause is None or pause.until > self.pause.until):
                self.concurrency.back_off(0.5)  # another worker was told to wait
            self.pause = pause
            if self.pause is None:
                self.probing = False
        if self.pause is not None:
            if now < self.pause.until or self.probing or outstanding:
                return 0
            if not self.store.claim_probe(self.owner):
                return 0
            self.probing = True  # one message, then wait for its answer
            log.info("the pause is over: one probing request", reason=self.pause.reason)
            wanted = 1
        if self.rate is None:
            return wanted
        if self.rate.held < wanted:
            want = max(wanted - self.rate.held, self.rate.lease)
            self.rate.held += self.store.take(want, rate=self.rate.rate, burst=self.rate.burst)
        if self.rate.held < wanted:
            self.rate_wait = 1 / self.rate.rate
        return min(wanted, self.rate.held)

    def claimed(self, count: int) -> None:
        """`count` messages were claimed with the tokens `admit` granted."""
        if self.rate is not None:
            self.rate.held = min(self.rate.held - count, self.rate.lease)

    def answered(self, outcome: Outcome, *, in_flight: int) -> Callable[[], None] | None:
        """Learn from one answer. Returns what to tell the other workers, if anything, to
        run on the claims thread: a pause, when the provider asked every sender to wait (a
        429 or 503 with `Retry-After`), or the end of one, when a probe got through."""
        now = time.time()
        pushed_back = overload(outcome)
        self.concurrency.sample(
            outcome.latency, in_flight=in_flight, overloaded=pushed_back, now=time.monotonic()
        )
        if pushed_back and outcome.status is not None:
            metrics.throttled.labels(status=str(outcome.status)).inc()
        retry_after = getattr(outcome, "retry_after", None)
        if pushed_back and retry_after is not None:
            until = now + retry_after
            if self.pause is None or until > self.pause.until:
                reason = f"HTTP {outcome.status}, Retry-After: {retry_after:g}"
                self.pause = Pause(until, reason, probing=True)
                self.probing = False
                self.concurrency.back_off(0.5)
                return partial(self._share_pause, until, reason)
            return None
        if self.probing:
            # The probe got an answer that is no push-back: everyone goes on.
            self.probing, self.pause = False, None
            log.info("the provider accepts requests again: sending resumed")
            return self.store.resume
        return None

    def _share_pause(self, until: float, reason: str) -> None:
        self.store.pause(until, reason)
        log.warning(
            "the provider asked to wait: every worker pauses",
            reason=reason,
            until=datetime.fromtimestamp(until, UTC).isoformat(timespec="milliseconds"),
        )
