"""The send loop of one worker process: claims due messages just in time, keeps up to
`in_flight` requests going at once over one keep-alive pool, and writes outcomes back in bulk.

All database work runs on one dedicated thread (Django's ORM is synchronous), so the event
loop only ever waits on the network.
"""

import asyncio
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import connection
from django.utils import timezone

from notifier.core import logging
from notifier.integrations.probe.client import (
    Delivered,
    Outcome,
    Permanent,
    ProbeClient,
    Unauthorized,
)
from notifier.mailings.models import Message
from notifier.ops import metrics
from notifier.sending import store
from notifier.sending.config import SendingConfig
from notifier.sending.policy import Settlement, release, settle

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
    def __init__(self, config: SendingConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._db_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-db")
        self._settled: list[Settlement] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self.gate = credentials
        self._live: list[int] = []
        self._live_at = -LIVE_REFRESH
        self._rotation = 0

    def run(self, *, budget: float) -> bool:
        """Send until nothing is due or `budget` seconds have passed; True if work remains."""
        try:
            return asyncio.run(self._run(budget))
        finally:
            # `connection` is per thread: close the one the database thread opened.
            self._db_pool.submit(lambda: connection.close()).result()
            self._db_pool.shutdown()

    async def _db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, lambda: fn(**kwargs))

    async def _run(self, budget: float) -> bool:
        deadline = time.monotonic() + budget
        last_flush = idle_since = time.monotonic()
        async with ProbeClient(
            base_url=self.config.probe_url,
            token=self.config.probe_token,
            max_connections=self.config.in_flight,
        ) as probe:
            while True:
                now = time.monotonic()
                if self._settled and (
                    len(self._settled) >= FLUSH_SIZE
                    or now - last_flush >= FLUSH_EVERY
                    or not self._in_flight
                ):
                    await self._flush()
                    last_flush = now
                if now >= deadline:
                    break
                claimed = 0
                free = self._free_slots()
                if free and now >= self.gate.closed_until:
                    claimed = await self._claim_and_start(probe, free)
                if claimed or self._in_flight:
                    idle_since = now
                elif now - idle_since >= IDLE_EXIT:
                    break
                if self._in_flight:
                    await asyncio.wait(
                        self._in_flight, timeout=FLUSH_EVERY, return_when=asyncio.FIRST_COMPLETED
                    )
                elif not claimed:
                    await asyncio.sleep(IDLE_POLL)
            if self._in_flight:
                await asyncio.wait(self._in_flight)
            await self._flush()
        return now >= deadline

    def _free_slots(self) -> int:
        if self.gate.probing:
            return 0 if self._in_flight else 1
        free = self.config.in_flight - len(self._in_flight)
        # Claim in batches of a tenth of the pool, or whatever is free when nothing is in flight.
        return free if free >= max(1, self.config.in_flight // 10) or not self._in_flight else 0

    async def _claim_and_start(self, probe: ProbeClient, free: int) -> int:
        now = timezone.now()
        if time.monotonic() - self._live_at >= LIVE_REFRESH or not self._live or _new_work.is_set():
            _new_work.clear()
            self._live = await self._db(store.live_mailing_ids, now=now)
            self._live_at = time.monotonic()
        claimed = 0
        # Round-robin over live mailings, so that a huge one does not starve the others.
        for _ in range(len(self._live)):
            if claimed >= free:
                break
            mailing_id = self._live[self._rotation % len(self._live)]
            self._rotation += 1
            started = time.monotonic()
            claims = await self._db(
                store.messages_claim,
                mailing_id=mailing_id,
                limit=free - claimed,
                now=now,
                lease=self.config.lease,
            )
            for claim in claims:
                task = asyncio.create_task(self._send(probe, claim, started))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            claimed += len(claims)
        return claimed

    async def _send(self, probe: ProbeClient, claim: store.Claim, claimed_at: float) -> None:
        try:
            await self._attempt(probe, claim, claimed_at)
        except Exception:
            # A bug must not strand the message in `sending` until its lease runs out.
            log.exception("attempt failed unexpectedly; message released", **_ids(claim))
            self._settled.append(release(message_id=claim.id, attempts=claim.attempts))

    async def _attempt(self, probe: ProbeClient, claim: store.Claim, claimed_at: float) -> None:
        now = timezone.now()
        time_left = (claim.mailing.end_at - now).total_seconds()
        late = time.monotonic() - claimed_at > self.config.start_window
        if late or time_left <= self.config.end_margin:
            # Too late to start: someone may have cancelled it since, or the window closed.
            self._settled.append(release(message_id=claim.id, attempts=claim.attempts))
            log.info("claim released unsent", **_ids(claim), late=late, time_left=time_left)
            return
        with metrics.in_flight.track_inprogress():
            outcome = await probe.send(
                message_id=claim.id,
                phone=claim.phone,
                text=claim.mailing.text,
                timeout=min(self.config.request_timeout, time_left),
            )
        metrics.record_attempt(type(outcome).__name__.lower(), outcome.latency)
        self._on_outcome(claim, outcome)

    def _on_outcome(self, claim: store.Claim, outcome: Outcome) -> None:
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
            now=timezone.now(),
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

    async def _flush(self) -> None:
        batch, self._settled = self._settled, []
        if batch:
            written = await self._db(store.messages_settle, settlements=batch)
            for status, count in written.items():
                if status in Message.FINAL_STATUSES:
                    metrics.record_final(status, count)


def _ids(claim: store.Claim) -> dict[str, int | None]:
    return {"message_id": claim.id, "mailing_id": claim.mailing.id, "client_id": claim.client_id}
