"""The simulated Probe API (one port) and its control API (another port).

How a request to ``POST /v1/send/{msgId}`` is answered, in order:

0. The provider's limits: with ``capacity`` N, a request arriving while N are being served
   gets a 429 without ``Retry-After``; with ``rate_cap`` R, one arriving when the second's R
   requests are used up (a token bucket of R, refilled at R per second) gets a 429 with
   ``Retry-After: retry_after_seconds``.
1. One random draw ``r`` in [0, 1) per request picks the "gateway" faults by stacked bands:
   ``drop_rate`` (connection aborted), then ``error_rate`` (500/502/503), then ``rate429``
   (429 with ``Retry-After``). Rates that sum past 1 are cut in that order.
2. The API itself: 401 while ``unauthorized`` is on or the bearer token is missing or wrong;
   400 with an empty body for a malformed request or an id in ``reject_ids``.
3. A well-formed request whose ``r`` falls in the next ``garbage_rate`` band gets a 200 whose
   body is not ``{"code": 0, ...}``; every other one is a delivery: 200 ``{"code": 0}``.

Everything is decided and recorded when the request arrives; only then does the handler sleep
``latency_ms`` + uniform(0, ``jitter_ms``) (+ ``hang_seconds`` while ``hang`` is on) and answer.
So a client that times out during the sleep still caused a delivery, as with a real API that
did the work but answered late; that is what explains duplicates after client retries.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import random
import re
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from aiohttp import web

log = logging.getLogger("probe_sim")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Recorded as the id of a request whose path held no int64; no real message uses it.
NO_ID = INT64_MIN
# Answers that are not an HTTP status share the status array, as codes no status uses.
DROPPED, GARBAGE = 0, 1

OK_BODY = b'{"code": 0, "message": "OK"}'
GARBAGE_BODIES = (
    (b"<html><body><h1>Service Temporarily Unavailable</h1></body></html>", "text/html"),
    (b'{"code": 1, "message": "busy"}', "application/json"),
    (b'{"code": 0, "mess', "application/json"),
)
SERVER_ERRORS = (500, 502, 503)
_MSG_ID = re.compile(r"-?[0-9]{1,19}")


def _number(name: str, value: Any, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not (0 <= value <= high and math.isfinite(value)):
        raise ValueError(f"{name} must be between 0 and {high}")
    return float(value)


def _rate(name: str, value: Any) -> float:
    return _number(name, value, 1.0)


def _whole(name: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _ids(name: str, value: Any) -> frozenset[int]:
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        type(i) is int and INT64_MIN <= i <= INT64_MAX for i in value
    ):
        raise ValueError(f"{name} must be a list of int64 ids")
    return frozenset(value)


@dataclass(frozen=True)
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    garbage_rate: float = 0.0
    drop_rate: float = 0.0
    rate429: float = 0.0
    retry_after_seconds: int = 1
    hang: bool = False
    hang_seconds: float = 30.0
    unauthorized: bool = False
    reject_ids: frozenset[int] = frozenset()
    capacity: int = 0  # requests served at once; 0: no limit
    rate_cap: float = 0.0  # requests accepted per second; 0: no limit

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """Return a copy with ``changes`` applied; ValueError names the first bad one."""
        clean = {}
        for name, value in changes.items():
            check = _CHECKS.get(name)
            if check is None:
                raise ValueError(f"unknown fault {name!r}")
            clean[name] = check(name, value)
        return replace(self, **clean)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reject_ids"] = sorted(self.reject_ids)
        return data


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _number,
    "jitter_ms": _number,
    "error_rate": _rate,
    "garbage_rate": _rate,
    "drop_rate": _rate,
    "rate429": _rate,
    "retry_after_seconds": _whole,
    "hang": _flag,
    "hang_seconds": _number,
    "unauthorized": _flag,
    "reject_ids": _ids,
    "capacity": _whole,
    "rate_cap": _number,
}


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8001
    control_port: int | None = None  # None: port + 1, or any free port when port is 0
    token: str | None = None  # None: any non-empty bearer token is accepted
    seed: int | None = None
    faults: Faults = field(default_factory=Faults)


_ANSWER_NAMES = {DROPPED: "dropped", GARBAGE: "garbage"}


def _answer_name(answer: int) -> str:
    return _ANSWER_NAMES.get(answer) or str(answer)


class Recorder:
    """The witness: every request and every delivery, in parallel arrays.

    About 18 bytes per request and 28 per delivery, so a million-request benchmark stays
    small; the summaries are computed when asked for.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.times = array("d")
        self.ids = array("q")
        self.answers = array("H")
        self.delivery_times = array("d")
        self.delivery_ids = array("q")
        self.delivery_phones = array("q")
        self.delivery_texts = array("I")  # index into self.texts: a mailing shares one text
        self.texts: list[str] = []
        self._text_index: dict[str, int] = {}

    def request(self, at: float, msg_id: int, answer: int) -> None:
        self.times.append(at)
        self.ids.append(msg_id)
        self.answers.append(answer)

    def delivery(self, at: float, msg_id: int, phone: int, text: str) -> None:
        index = self._text_index.get(text)
        if index is None:
            index = self._text_index[text] = len(self.texts)
            self.texts.append(text)
        self.delivery_times.append(at)
        self.delivery_ids.append(msg_id)
        self.delivery_phones.append(phone)
        self.delivery_texts.append(index)

    def report(self) -> dict[str, Any]:
        per_id = Counter(self.delivery_ids)
        return {
            "requests": len(self.times),
            "by_answer": {_answer_name(a): n for a, n in sorted(Counter(self.answers).items())},
            "delivered": len(per_id),
            "deliveries": len(self.delivery_ids),
            "duplicates": {str(i): n for i, n in per_id.items() if n > 1},
            "first_request_at": min(self.times, default=None),
            "last_request_at": max(self.times, default=None),
            "last_delivery_at": max(self.delivery_times, default=None),
        }

    def deliveries(self) -> list[dict[str, Any]]:
        """One entry per distinct (id, phone, text), so a retry that changed either shows."""
        groups: dict[tuple[int, int, int], list[float]] = {}
        keys = zip(self.delivery_ids, self.delivery_phones, self.delivery_texts, strict=True)
        for key, at in zip(keys, self.delivery_times, strict=True):
            groups.setdefault(key, []).append(at)
        return [
            {"id": i, "phone": phone, "text": self.texts[text], "times": times}
            for (i, phone, text), times in groups.items()
        ]

    def requests(self, after: float | None = None) -> list[dict[str, Any]]:
        return [
            {"time": at, "id": None if i == NO_ID else i, "answer": _answer_name(a)}
            for at, i, a in zip(self.times, self.ids, self.answers, strict=True)
            if after is None or at > after
        ]


def _message(data: Any, msg_id: int) -> tuple[int, str] | None:
    """(phone, text) of a well-formed body for ``msg_id``, else None (bool is no integer)."""
    if not isinstance(data, dict):
        return None
    body_id, phone, text = data.get("id"), data.get("phone"), data.get("text")
    if type(body_id) is not int or body_id != msg_id or msg_id == NO_ID:
        return None
    if type(phone) is not int or not INT64_MIN <= phone <= INT64_MAX or type(text) is not str:
        return None
    return phone, text


class Simulator:
    """Both apps plus their runners; ``start()`` listens, ``stop()`` shuts down."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.faults = config.faults
        self.record = Recorder()
        self.rng = random.Random(config.seed)  # noqa: S311 - simulated faults, not secrets
        self._token = config.token.encode() if config.token else None
        self.api_port = config.port
        self.control_port = config.control_port
        if self.control_port is None:
            self.control_port = config.port + 1 if config.port else 0
        self._serving = 0  # requests between arrival and answer, for `capacity`
        self._bucket = (0.0, 0.0)  # (tokens, monotonic time of the last refill), for `rate_cap`
        self.outage_until = 0.0  # wall clock, for reporting
        self._outage_end = 0.0  # monotonic, for scheduling
        self._outage_task: asyncio.Task[None] | None = None
        self._api_site: web.TCPSite | None = None

        self.api_app = web.Application()
        self.api_app.router.add_post("/v1/send/{msg_id}", self._send)
        self.api_app.router.add_get("/health", self._health)
        self.control_app = web.Application()
        self.control_app.add_routes(
            [
                web.get("/health", self._health),
                web.get("/control/faults", self._get_faults),
                web.put("/control/faults", self._change_faults),
                web.patch("/control/faults", self._change_faults),
                web.post("/control/outage", self._outage),
                web.get("/control/report", self._report),
                web.get("/control/deliveries", self._deliveries),
                web.get("/control/requests", self._requests),
                web.post("/control/reset", self._reset),
            ]
        )
        # No access log: at benchmark rates it would cost more than the handler itself.
        self._api_runner = web.AppRunner(self.api_app, access_log=None, shutdown_timeout=1.0)
        self._control_runner = web.AppRunner(self.control_app, access_log=None)

    @property
    def api_url(self) -> str:
        return f"http://{_url_host(self.config.host)}:{self.api_port}/v1"

    @property
    def control_url(self) -> str:
        return f"http://{_url_host(self.config.host)}:{self.control_port}/control"

    async def start(self) -> None:
        await self._api_runner.setup()
        await self._control_runner.setup()
        await self._start_api_site()
        control_site = web.TCPSite(self._control_runner, self.config.host, self.control_port)
        await control_site.start()
        self.control_port = control_site.port

    async def stop(self) -> None:
        if self._outage_task is not None:
            self._outage_task.cancel()
        await self._api_runner.cleanup()
        await self._control_runner.cleanup()

    async def _start_api_site(self) -> None:
        site = web.TCPSite(self._api_runner, self.config.host, self.api_port)
        await site.start()
        self.api_port = site.port  # keep a port-0 choice across outages
        self._api_site = site

    async def outage(self, seconds: float) -> None:
        """Refuse TCP connections on the API port for ``seconds``; 0 ends an outage now.

        A second call during an outage can only extend it.
        """
        if seconds <= 0:
            await self._end_outage_now()
            return
        self._outage_end = max(self._outage_end, time.monotonic() + seconds)
        self.outage_until = max(self.outage_until, time.time() + seconds)
        if self._outage_task is not None:
            return
        if self._api_site is not None:
            await self._api_site.stop()
            self._api_site = None
        # Open keep-alive connections would otherwise keep being served through the outage.
        server = self._api_runner.server
        for connection in server.connections if server else []:
            if connection.transport is not None:
                connection.transport.abort()
        log.info("outage: API port %s refuses connections for %ss", self.api_port, seconds)
        self._outage_task = asyncio.create_task(self._end_outage())

    async def _end_outage(self) -> None:
        while (left := self._outage_end - time.monotonic()) > 0:
            await asyncio.sleep(left)
        while True:
            try:
                await self._start_api_site()
                break
            except OSError as exc:  # someone took the port meanwhile; wait for it
                log.warning("cannot listen on port %s again: %s", self.api_port, exc)
                await asyncio.sleep(0.5)
        self._outage_task = None
        self.outage_until = 0.0
        log.info("outage over: API port %s accepts connections", self.api_port)

    async def _end_outage_now(self) -> None:
        if self._outage_task is not None:
            self._outage_task.cancel()
            self._outage_task = None
        self._outage_end = self.outage_until = 0.0
        if self._api_site is None:
            await self._start_api_site()

    # The Probe API

    async def _send(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        faults = self.faults
        raw_id = request.match_info["msg_id"]
        msg_id = int(raw_id) if _MSG_ID.fullmatch(raw_id) else NO_ID
        if not INT64_MIN < msg_id <= INT64_MAX:
            msg_id = NO_ID
        limited = self._over_limits(faults)
        if limited is not None:
            self.record.request(arrived, msg_id, 429)
            return limited  # at once: turning a request away costs the provider nothing
        answer, response = await self._decide(request, faults, msg_id)
        self.record.request(arrived, msg_id, answer)

        delay = faults.latency_ms / 1000
        if faults.jitter_ms:
            delay += self.rng.uniform(0, faults.jitter_ms) / 1000
        if faults.hang:
            delay += faults.hang_seconds
        if delay > 0:
            self._serving += 1
            try:
                await asyncio.sleep(delay)
            finally:
                self._serving -= 1
        if response is None:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never written: the connection is gone
        return response

    def _over_limits(self, faults: Faults) -> web.Response | None:
        """A 429 if the request is beyond the provider's concurrency or rate limit."""
        if faults.capacity and self._serving >= faults.capacity:
            return web.Response(status=429, text="too many requests at once")
        if faults.rate_cap:
            tokens, refilled = self._bucket
            now = time.monotonic()
            tokens = min(faults.rate_cap, tokens + (now - refilled) * faults.rate_cap)
            if tokens < 1:
                self._bucket = (tokens, now)
                retry_after = str(faults.retry_after_seconds)
                return web.Response(status=429, headers={"Retry-After": retry_after})
            self._bucket = (tokens - 1, now)
        return None

    async def _decide(
        self, request: web.Request, faults: Faults, msg_id: int
    ) -> tuple[int, web.Response | None]:
        rng = self.rng
        draw = rng.random()
        edge = faults.drop_rate
        if draw < edge:
            return DROPPED, None
        edge += faults.error_rate
        if draw < edge:
            status = rng.choice(SERVER_ERRORS)
            return status, web.Response(status=status, text="simulated server error")
        edge += faults.rate429
        if draw < edge:
            retry_after = str(faults.retry_after_seconds)
            return 429, web.Response(status=429, headers={"Retry-After": retry_after})

        if faults.unauthorized or not self._authorised(request.headers.get("Authorization", "")):
            return 401, web.Response(status=401)
        try:
            message = _message(json.loads(await request.read()), msg_id)
        except (ValueError, RecursionError):  # not JSON, or not UTF-8
            message = None
        if message is None or msg_id in faults.reject_ids:
            return 400, web.Response(status=400)

        if draw < edge + faults.garbage_rate:
            body, content_type = rng.choice(GARBAGE_BODIES)
            return GARBAGE, web.Response(body=body, content_type=content_type)
        self.record.delivery(time.time(), msg_id, *message)
        return 200, web.Response(body=OK_BODY, content_type="application/json")

    def _authorised(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return self._token is None or hmac.compare_digest(token.encode(), self._token)

    # The control API

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.to_json())

    async def _change_faults(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object of faults")
            self.faults = self.faults.updated(changes)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.info("faults changed: %s", changes)
        return web.json_response(self.faults.to_json())

    async def _outage(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            seconds = _number("seconds", body.get("seconds") if isinstance(body, dict) else None)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        await self.outage(seconds)
        return web.json_response({"outage_until": self.outage_until or None})

    async def _report(self, request: web.Request) -> web.Response:
        return web.json_response(self.record.report())

    async def _deliveries(self, request: web.Request) -> web.Response:
        return web.json_response(self.record.deliveries())

    async def _requests(self, request: web.Request) -> web.Response:
        after = request.query.get("after")
        try:
            after_time = float(after) if after is not None else None
        except ValueError:
            return web.json_response({"error": "after must be a number"}, status=400)
        return web.json_response(self.record.requests(after_time))

    async def _reset(self, request: web.Request) -> web.Response:
        """Forget all records, end any outage, restore the start-up faults and seed."""
        self.record.clear()
        self.faults = self.config.faults
        self.rng.seed(self.config.seed)
        self._bucket = (0.0, 0.0)
        await self._end_outage_now()
        return web.json_response(self.faults.to_json())


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
