"""The send loop of one worker process: claims due messages just in time, keeps up to
`in_flight` requests going at once over one keep-alive pool, and writes outcomes back in bulk.

All database work runs on two dedicated threads, one for claims and one for outcomes (Django's
ORM is synchronous), so the event loop only ever waits on the network.
"""

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import connection

from notifier.core import logging, metrics
from notifier.integrations.probe.client import (
    Delivered,
    Outcome,
    Permanent,
    ProbeClient,
    Unauthorized,
)
from notifier.mailings.models import Message
from notifier.sending import queries
from notifier.sending.policy import Settlement, release, settle
from notifier.sending.settings import EngineSettings

log = logging.get_logger(__name__)
T = TypeVar("T")

FLUSH_EVERY = 0.05  # seconds between bulk writes of outcomes
FLUSH_SIZE = 500  # ... or as soon as this many are waiting
IDLE_POLL = 0.2  # seconds between claims while nothing is due
IDLE_EXIT = 1.0  # a loop with nothing to do for this long ends; the tick wakes it again
LIVE_REFRESH = 1.0  # seconds between refreshes of the list of live mailings


class CredentialsGate:
    """Whether the API currently accepts our credentials, as this process last saw it.

    After a 401/403 nothing is sent for a pause (doubling up to `backoff_max`), then one
    request at a time probes until one gets through. It outlives a dispatch run: the next run
    must not meet the refusal again with a full pool of requests."""

    def __init__(self) -> None:
        self.closed_until = 0.0
        self.probing = False
        self.pause = 0.0

    def refused(self, reason: str, *, first_pause: float, max_pause: float) -> float:
        """Record a refusal; returns the pause to apply to the refused message."""
        now = time.monotonic()
        if now < self.closed_until:
            return self.pause
        self.pause = min(max(self.pause * 2, first_pause), max_pause)
        self.closed_until = now + self.pause
        self.probing = True
        log.error(
            "Probe API refused our credentials: sending paused; check PROBE_TOKEN",
            reason=reason,
            pause_seconds=self.pause,
        )
        return self.pause

    def accepted(self) -> None:
        if self.probing:
            log.warning("Probe API accepts our credentials again: sending resumed")
        self.probing = False
        self.pause = 0.0


credentials = CredentialsGate()
# Set when a mailing starts while the loop runs: look for new live mailings at once, not at
# the next refresh (a newly started mailing would otherwise wait up to LIVE_REFRESH).
_new_work = threading.Event()


def poke() -> None:
    _new_work.set()


class Dispatcher:
    """The feeder claims messages as slots free up and queues them; `in_flight` lanes take
    them from the queue, one request at a time each; the flusher writes outcomes back. Claims
    and settlements run on database threads of their own, so neither ever waits for the
    other, and sending never waits for either.

    The feeder claims a little ahead (`_prefetch`): a slot that frees up starts its next
    request at once instead of waiting for a claim's round trip. The lead is bounded by the
    recent send rate, so a claimed message waits for a slot a fraction of `start_window` at
    most (past it, it is released unsent)."""

    def __init__(self, config: EngineSettings, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        # One connection each: a claim never queues behind a settlement.
        self._claims_db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-claims")
        self._settle_db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-settle")
        self._settled: list[Settlement] = []
        self._outstanding = 0  # claimed messages not yet done with
        self._sending = 0  # of which requests under way
        self._done = 0  # requests started, for the send rate (releases are not sends)
        self._rate = 0.0  # requests per second, smoothed
        self.gate = credentials
        self._live: list[int] = []
        self._live_at = -LIVE_REFRESH
        self._rotation = 0

    def run(self, *, budget: float) -> bool:
        """Send until nothing is due or `budget` seconds have passed; True if work remains."""
        try:
            return asyncio.run(self._run(budget))
        finally:
            # `connection` is per thread: close the ones the database threads opened.
            for pool in (self._claims_db, self._settle_db):
                pool.submit(lambda: connection.close()).result()
                pool.shutdown()

    async def _db(self, pool: ThreadPoolExecutor, fn: Callable[..., T], /, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(**kwargs))

    async def _run(self, budget: float) -> bool:
        deadline = time.monotonic() + budget
        self._queue: asyncio.Queue[tuple[queries.Claim, float]] = asyncio.Queue()
        self._slot_freed = asyncio.Event()
        self._all_done = asyncio.Event()
        self._stopping = asyncio.Event()
        async with ProbeClient(
            base_url=self.config.probe_url,
            token=self.config.probe_token,
            max_connections=self.config.in_flight,
        ) as probe:
            lanes = [asyncio.create_task(self._lane(probe)) for _ in range(self.config.in_flight)]
            flusher = asyncio.create_task(self._flush_loop())
            try:
                more = await self._feed(deadline)
            except BaseException:
                self._release_queued()  # not started: back to pending at once
                raise
            finally:
                # What is under way finishes and is recorded, whatever ended the run.
                if self._outstanding:
                    self._all_done.clear()
                    await self._all_done.wait()
                for lane in lanes:
                    lane.cancel()  # all of them wait on the empty queue by now
                self._stopping.set()
                await flusher
        return more

    def _release_queued(self) -> None:
        while not self._queue.empty():
            claim, _ = self._queue.get_nowait()
            self._release(claim)
            self._done_with()

    def _release(self, claim: queries.Claim) -> None:
        """Give a claimed message back unsent: `pending` again at the next write."""
        self._settled.append(release(message_id=claim.id, attempts=claim.attempts))

    def _done_with(self) -> None:
        self._outstanding -= 1
        if not self._outstanding:
            self._all_done.set()

    async def _feed(self, deadline: float) -> bool:
        """Claim and start messages until the deadline, or until nothing has been due for
        IDLE_EXIT; returns whether the deadline cut it short."""
        idle_since = rate_at = time.monotonic()
        done_at_rate = 0
        while True:
            self._slot_freed.clear()  # before claiming: a slot freed meanwhile wakes the wait
            now = time.monotonic()
            if now >= deadline:
                return True
            if now - rate_at >= 0.5:
                # Requests per second over the last half second, smoothed.
                recent = (self._done - done_at_rate) / (now - rate_at)
                self._rate = 0.5 * self._rate + 0.5 * recent
                rate_at, done_at_rate = now, self._done
            metrics.in_flight.set(self._sending)
            claimed = 0
            wanted = self._wanted()
            if wanted and now >= self.gate.closed_until:
                claimed = await self._claim(wanted)
            if claimed or self._outstanding:
                idle_since = now
            elif now - idle_since >= IDLE_EXIT:
                return False
            if self._outstanding:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), FLUSH_EVERY)
            elif not claimed:
                await asyncio.sleep(IDLE_POLL)

    def _prefetch(self) -> int:
        """How many claimed messages may wait for a slot: what the recent rate sends within a
        quarter of the start window, at most half the pool."""
        return min(self.config.in_flight // 2, int(self._rate * self.config.start_window / 4))

    def _wanted(self) -> int:
        """How many messages to claim now (0: not worth a round trip yet)."""
        if self.gate.probing:
            return 0 if self._outstanding else 1
        free = self.config.in_flight + self._prefetch() - self._outstanding
        # Claim in batches of a tenth of the pool, or whatever is free when nothing is out.
        return free if free >= max(1, self.config.in_flight // 10) or not self._outstanding else 0

    async def _claim(self, wanted: int) -> int:
        now = _now()
        if time.monotonic() - self._live_at >= LIVE_REFRESH or not self._live or _new_work.is_set():
            _new_work.clear()
            self._live = await self._db(self._claims_db, queries.live_mailing_ids, now=now)
            self._live_at = time.monotonic()
        claimed = 0
        # Round-robin over live mailings, so that a huge one does not starve the others.
        for _ in range(len(self._live)):
            if claimed >= wanted:
                break
            mailing_id = self._live[self._rotation % len(self._live)]
            self._rotation += 1
            started = time.monotonic()
            claims = await self._db(
                self._claims_db,
                queries.messages_claim,
                mailing_id=mailing_id,
                limit=wanted - claimed,
                now=now,
                lease=self.config.lease,
            )
            for claim in claims:
                self._queue.put_nowait((claim, started))
            self._outstanding += len(claims)
            claimed += len(claims)
        return claimed

    async def _lane(self, probe: ProbeClient) -> None:
        """One request at a time, for as long as the run lasts (cancelled at its end)."""
        while True:
            claim, claimed_at = await self._queue.get()
            try:
                await self._attempt(probe, claim, claimed_at)
            except Exception:
                # A bug must not strand the message in `sending` until its lease runs out.
                log.exception("attempt failed unexpectedly; message released", **_ids(claim))
                self._release(claim)
            self._done_with()
            if self._wanted():
                self._slot_freed.set()

    async def _attempt(self, probe: ProbeClient, claim: queries.Claim, claimed_at: float) -> None:
        now = _now()
        time_left = (claim.mailing.end_at - now).total_seconds()
        late = time.monotonic() - claimed_at > self.config.start_window
        # Claimed before a refusal of our credentials: the pause applies to it too.
        refused = time.monotonic() < self.gate.closed_until or (
            self.gate.probing and self._sending > 0
        )
        if late or refused or time_left <= self.config.end_margin:
            # Too late to start (someone may have cancelled it since, or the window closed),
            # or not now.
            self._release(claim)
            log.info(
                "claim released unsent",
                **_ids(claim),
                late=late,
                refused=refused,
                time_left=time_left,
            )
            return
        self._sending += 1
        self._done += 1
        try:
            outcome = await probe.send(
                message_id=claim.id,
                phone=claim.phone,
                text=claim.mailing.text,
                timeout=min(self.config.request_timeout, time_left),
            )
        finally:
            self._sending -= 1
        metrics.record_attempt(type(outcome).__name__.lower(), outcome.latency)
        self._on_outcome(claim, outcome)

    def _on_outcome(self, claim: queries.Claim, outcome: Outcome) -> None:
        pause = self.config.auth_pause
        if isinstance(outcome, Unauthorized):
            pause = self.gate.refused(
                outcome.reason,
                first_pause=self.config.auth_pause,
                max_pause=self.config.backoff_max,
            )
        elif isinstance(outcome, Delivered | Permanent):
            # Only an answer from behind the API's authentication proves our credentials.
            self.gate.accepted()
        settlement = settle(
            message_id=claim.id,
            attempts=claim.attempts,
            outcome=outcome,
            now=_now(),
            end_at=claim.mailing.end_at,
            backoff_base=self.config.backoff_base,
            backoff_max=self.config.backoff_max,
            auth_pause=pause,
            rng=self.rng,
        )
        self._settled.append(settlement)
        # One line per request to the API: its answer and what it made of the message.
        log.info(
            "send attempt",
            **_ids(claim),
            attempt=claim.attempts,
            outcome=type(outcome).__name__.lower(),
            http_status=outcome.status,
            latency_ms=round(outcome.latency * 1000, 1),
            error=getattr(outcome, "reason", None),
            status_from=Message.Status.SENDING.value,
            status_to=settlement.status,
            next_attempt_at=settlement.next_attempt_at,
        )

    async def _flush_loop(self) -> None:
        """Write outcomes back every FLUSH_EVERY (straight after the last write when
        FLUSH_SIZE or more are waiting); the last write happens after every request has come
        back."""
        while not self._stopping.is_set():
            if len(self._settled) < FLUSH_SIZE:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), FLUSH_EVERY)
            await self._flush()
        await self._flush()

    async def _flush(self) -> None:
        # The gauge follows the loop here and at each pass of the feeder, not at each
        # request (two writes to its shared file per request cost a measurable share).
        metrics.in_flight.set(self._sending)
        batch, self._settled = self._settled, []
        if not batch:
            return
        try:
            written = await self._db(self._settle_db, queries.messages_settle, settlements=batch)
        except Exception:
            # Kept for the next write: an outcome lost here would leave a delivered message
            # `sending`, to be sent again when its lease runs out.
            log.exception("writing outcomes failed; will retry", messages=len(batch))
            self._settled = batch + self._settled
            return
        for status, count in written.items():
            if status in Message.FINAL_STATUSES:
                metrics.record_final(status, count)


def _now() -> datetime:
    # django.utils.timezone.now() reads a lazy setting on every call; USE_TZ is always on.
    return datetime.now(UTC)


def _ids(claim: queries.Claim) -> dict[str, int | None]:
    return {"message_id": claim.id, "mailing_id": claim.mailing.id, "client_id": claim.client_id}
