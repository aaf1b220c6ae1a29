"""The send loop of one worker process: claims due messages just in time, keeps up to
`in_flight` requests going at once over one keep-alive pool, and writes outcomes back in bulk.

All database work runs on two dedicated threads, one for claims and one for outcomes (Django's
ORM is synchronous), so the event loop only ever waits on the network.
"""

import asyncio
import bisect
import contextlib
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connection

from notifier.core import logging, metrics
from notifier.core.metrics import LATENCY_BUCKETS
from notifier.integrations.probe.client import (
    Delivered,
    Outcome,
    Permanent,
    ProbeClient,
    Unauthorized,
)
from notifier.mailings.models import Message
from notifier.sending import queries
from notifier.sending.limits import Admission, store_for
from notifier.sending.policy import Schedule, Settlement, postpone, release, settle
from notifier.sending.settings import EngineSettings

log = logging.get_logger(__name__)
T = TypeVar("T")

FLUSH_EVERY = 0.05  # seconds between bulk writes of outcomes
FLUSH_SIZE = 500  # ... or as soon as this many are waiting
IDLE_POLL = 0.2  # seconds between claims while nothing is due
IDLE_EXIT = 1.0  # a loop with nothing to do for this long ends; the tick wakes it again
LIVE_REFRESH = 1.0  # seconds between refreshes of the list of live mailings
REPORT_EVERY = 1.0  # seconds between reports of the loop's state (`SendLoop`)
# What a lost or refused database connection raises (a restart, a failover, a network cut).
DATABASE_ERRORS = (OperationalError, InterfaceError)


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


class DatabaseGate:
    """Whether the database answers, as this send loop last saw it. While it does not, the
    loop claims nothing, its requests in flight go on, and their outcomes are held and
    written once it answers again; a try every `pause` seconds, doubling up to `max_pause`.
    One line when it goes, one when it comes back."""

    def __init__(self, *, first_pause: float = 0.1, max_pause: float = 2.0) -> None:
        self.first_pause = first_pause
        self.max_pause = max_pause
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.pause = 0.0

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, error: BaseException, *, held: int) -> None:
        now = time.monotonic()
        self.pause = min(max(self.pause * 2, self.first_pause), self.max_pause)
        self.retry_at = now + self.pause
        if not isinstance(error, DATABASE_ERRORS):
            # Not an outage but a bug (the database refused the statement): said every time,
            # with its traceback, and tried again at the same pace.
            log.error("writing outcomes failed; will retry", exc_info=error, outcomes_held=held)
        elif self.down_since is None:
            self.down_since = now
            log.warning(
                "database unavailable: claims paused, outcomes held until it answers",
                error=f"{type(error).__name__}: {error}".strip(),
                outcomes_held=held,
            )

    def answered(self) -> None:
        if self.down_since is not None:
            log.warning(
                "database answers again: sending resumed",
                down_seconds=round(time.monotonic() - self.down_since, 1),
            )
        self.down_since = None
        self.pause = 0.0
        self.retry_at = 0.0


_admission: Admission | None = None


def admission_for(config: EngineSettings) -> Admission:
    """This process's admission control: made once, so that the concurrency limit it learnt
    outlives a dispatch run."""
    global _admission
    if _admission is None:
        _admission = Admission(
            in_flight=config.in_flight,
            rate_limit=config.rate_limit,
            store=store_for(config.broker_url),
            owner=f"{socket.gethostname()}-{os.getpid()}",
        )
    return _admission


# Set when the worker is asked to stop (a warm shutdown): the send loop claims nothing more,
# lets what is under way finish and writes every outcome it holds, for at most
# `shutdown_timeout` seconds.
shutting_down = threading.Event()
# Set when a mailing starts while the loop runs: look for new live mailings at once, not at
# the next refresh (a newly started mailing would otherwise wait up to LIVE_REFRESH).
_new_work = threading.Event()


def poke() -> None:
    _new_work.set()


class Dispatcher:
    """The feeder claims messages as slots free up and queues them; lanes take them from the
    queue, one request at a time each, as many lanes as the in-flight limit admission control
    found (`limits.ConcurrencyLimit`); the flusher writes outcomes back. Claims
    and settlements run on database threads of their own, so neither ever waits for the
    other, and sending never waits for either.

    The feeder claims a little ahead (`_prefetch`): a slot that frees up starts its next
    request at once instead of waiting for a claim's round trip. The lead is bounded by the
    recent send rate, so a claimed message waits for a slot a fraction of `start_window` at
    most (past it, it is released unsent)."""

    def __init__(
        self,
        config: EngineSettings,
        *,
        rng: random.Random | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.config = config
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        # One connection each: a claim never queues behind a settlement.
        self._claims_db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-claims")
        self._settle_db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-settle")
        self._settled: list[Settlement] = []
        # Requests by (minute, outcome, latency bucket), for the attempts rollup.
        self._attempts: Counter[tuple[datetime, str, int]] = Counter()
        self._outstanding = 0  # claimed messages not yet done with
        self._sending = 0  # of which requests under way
        self._done = 0  # requests started, for the send rate (releases are not sends)
        self._rate = 0.0  # requests per second, smoothed
        self.gate = credentials
        self.database = DatabaseGate()
        self.admission = admission or admission_for(config)
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
        def call() -> T:
            try:
                return fn(**kwargs)
            except DATABASE_ERRORS:
                # The thread's connection is broken: the next call opens a new one.
                with contextlib.suppress(Exception):
                    connection.close()
                raise

        return await asyncio.get_running_loop().run_in_executor(pool, call)

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
            self._probe = probe
            self._lanes: set[asyncio.Task[None]] = set()
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
                for lane in list(self._lanes):
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
        reported_at = 0.0
        done_at_rate = 0
        while True:
            self._slot_freed.clear()  # before claiming: a slot freed meanwhile wakes the wait
            now = time.monotonic()
            if now >= deadline or shutting_down.is_set():
                return True
            if now - rate_at >= 0.5:
                # Requests per second over the last half second, smoothed.
                recent = (self._done - done_at_rate) / (now - rate_at)
                self._rate = 0.5 * self._rate + 0.5 * recent
                rate_at, done_at_rate = now, self._done
            if now - reported_at >= REPORT_EVERY:
                reported_at = now
                self._report()
            metrics.in_flight.set(self._sending)
            self._staff_lanes()
            claimed = 0
            wanted = self._wanted()
            if wanted and now >= max(self.gate.closed_until, self.database.retry_at):
                try:
                    claimed = await self._admit_and_claim(wanted)
                except DATABASE_ERRORS as exc:
                    self.database.failed(exc, held=len(self._settled))
                else:
                    self.database.answered()
            if claimed or self._outstanding:
                idle_since = now
            elif now - idle_since >= IDLE_EXIT:
                return False
            if self._outstanding:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), FLUSH_EVERY)
            elif not claimed:
                # Held back by the rate limit: only until its next token, not a whole poll.
                await asyncio.sleep(self.admission.rate_wait or IDLE_POLL)

    def _report(self) -> None:
        """Tell the console how this loop is doing (on the claims thread, not awaited)."""
        held_back = ""
        if not self.database.up:
            held_back = "the database is unavailable"
        elif time.monotonic() < self.gate.closed_until or self.gate.probing:
            held_back = "the API refused our credentials"
        elif self.admission.paused(time.time()) and self.admission.pause is not None:
            held_back = f"the API asked to wait: {self.admission.pause.reason}"
        task = asyncio.ensure_future(
            self._db(
                self._claims_db,
                queries.send_loop_report,
                name=self.admission.owner,
                in_flight=self._sending,
                in_flight_limit=self.admission.concurrency.value,
                held_back=held_back,
            )
        )
        task.add_done_callback(_log_failure)

    def _prefetch(self, limit: int) -> int:
        """How many claimed messages may wait for a slot: what the recent rate sends within a
        quarter of the start window, at most half the in-flight limit."""
        return min(limit // 2, int(self._rate * self.config.start_window / 4))

    def _wanted(self) -> int:
        """How many messages to claim now (0: not worth a round trip yet)."""
        if self.gate.probing:
            return 0 if self._outstanding else 1
        limit = self.admission.concurrency.value
        free = limit + self._prefetch(limit) - self._outstanding
        # Claim in batches of a tenth of the limit, or whatever is free when nothing is out.
        return free if free >= max(1, limit // 10) or not self._outstanding else 0

    async def _admit_and_claim(self, wanted: int) -> int:
        """Claim what admission control lets through of `wanted` (the shared pause and rate
        limit are read on the claims thread, beside the claims)."""
        admitted = await self._db(
            self._claims_db, self.admission.admit, wanted=wanted, outstanding=self._outstanding
        )
        if not admitted:
            return 0
        claimed = await self._claim(admitted)
        self.admission.claimed(claimed)
        return claimed

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

    def _staff_lanes(self) -> None:
        """As many lanes as the in-flight limit: a lane beyond it ends after its request."""
        while len(self._lanes) < self.admission.concurrency.value:
            lane = asyncio.create_task(self._lane(self._probe))
            self._lanes.add(lane)
            lane.add_done_callback(self._lanes.discard)

    async def _lane(self, probe: ProbeClient) -> None:
        """One request at a time, while the in-flight limit has room for this lane (cancelled
        at the end of the run)."""
        me = asyncio.current_task()
        while True:
            if len(self._lanes) > self.admission.concurrency.value:
                self._lanes.discard(me)
                return
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
        schedule = self._schedule(claim)
        late = time.monotonic() - claimed_at > self.config.start_window
        # Claimed before a refusal of our credentials or the provider's request to wait: the
        # pause applies to it too.
        refused = (
            time.monotonic() < self.gate.closed_until
            or (self.gate.probing and self._sending > 0)
            or self.admission.paused(time.time())
        )
        if late or refused or now >= schedule.last_start:
            # Too late to start (someone may have cancelled it since, or the mailing's end
            # is too near for a useful request), or not now.
            self._release(claim)
            log.info(
                "claim released unsent",
                **_ids(claim),
                late=late,
                refused=refused,
                time_left=time_left,
            )
            return
        if not schedule.allows(now):
            # Due inside its client's window, which has closed since: no request outside it.
            postponed = postpone(
                message_id=claim.id, attempts=claim.attempts, now=now, schedule=schedule
            )
            self._settled.append(postponed)
            log.info(
                "claim postponed to the next opening of its send window",
                **_ids(claim),
                status_to=postponed.status,
                next_attempt_at=postponed.next_attempt_at,
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
        kind = type(outcome).__name__.lower()
        metrics.record_attempt(kind, outcome.latency)
        minute = now.replace(second=0, microsecond=0)
        self._attempts[(minute, kind, bisect.bisect_left(LATENCY_BUCKETS, outcome.latency))] += 1
        self._on_outcome(claim, outcome)

    def _schedule(self, claim: queries.Claim) -> Schedule:
        """When the claimed message may go: see `policy.Schedule`."""
        return self.config.schedule(
            end_at=claim.mailing.end_at, window=claim.mailing.window, zone=claim.timezone
        )

    def _on_outcome(self, claim: queries.Claim, outcome: Outcome) -> None:
        tell_others = self.admission.answered(outcome, in_flight=self._sending)
        if tell_others is not None:
            task = asyncio.ensure_future(self._db(self._claims_db, tell_others))
            task.add_done_callback(_log_failure)
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
            schedule=self._schedule(claim),
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
        FLUSH_SIZE or more are waiting); once the run is over, until every one is written."""
        while not self._stopping.is_set():
            if len(self._settled) < FLUSH_SIZE or not self.database.up:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._flush_pause())
            await self._flush()
        # Nothing held is dropped while the process lives: an outcome lost here would leave a
        # delivered message `sending`, to be sent again when its lease runs out. A worker
        # that is being stopped gives up after its shutdown timeout.
        give_up_at: float | None = None
        while await self._flush():
            if shutting_down.is_set():
                give_up_at = give_up_at or time.monotonic() + self.config.shutdown_timeout
                if time.monotonic() >= give_up_at:
                    log.error(
                        "stopping with outcomes not written: their messages are sent again"
                        " when their lease runs out",
                        message_ids=[s.id for s in self._settled],
                    )
                    return
            await asyncio.sleep(self._flush_pause())

    def _flush_pause(self) -> float:
        return max(FLUSH_EVERY, self.database.retry_at - time.monotonic())

    async def _flush(self) -> bool:
        """Write what is held; returns whether something is still held (the write failed)."""
        # The gauge follows the loop here and at each pass of the feeder, not at each
        # request (two writes to its shared file per request cost a measurable share).
        metrics.in_flight.set(self._sending)
        batch, self._settled = self._settled, []
        attempts, self._attempts = self._attempts, Counter()
        if not batch and not attempts:
            return False
        try:
            written = await self._db(self._settle_db, queries.messages_settle, settlements=batch)
            await self._db(self._settle_db, queries.attempts_record, counts=attempts)
        except Exception as exc:
            self._settled = batch + self._settled  # kept, in order, for the next write
            self._attempts.update(attempts)
            self.database.failed(exc, held=len(self._settled))
            return True
        self.database.answered()
        for status, count in written.items():
            if status in Message.FINAL_STATUSES:
                metrics.record_final(status, count)
        return bool(self._settled)


def _log_failure(task: "asyncio.Future[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("the other workers could not be told", error=str(task.exception()))


def _now() -> datetime:
    # django.utils.timezone.now() reads a lazy setting on every call; USE_TZ is always on.
    return datetime.now(UTC)


def _ids(claim: queries.Claim) -> dict[str, int | None]:
    return {"message_id": claim.id, "mailing_id": claim.mailing.id, "client_id": claim.client_id}
