"""The client of the external sending API ("Probe"): one operation, typed outcomes.

Every answer the API can give, and every way it can fail to answer, maps to exactly one of
four outcomes, so the engine's retry policy reads as a table:

| answer                                            | outcome      |
|---------------------------------------------------|--------------|
| 200 with a JSON object whose `code` is 0          | Delivered    |
| 200 with anything else, 5xx, 408, 425, 429        | Transient    |
| timeout, refused or reset connection              | Transient    |
| 401, 403                                          | Unauthorized |
| 400 and any other 4xx                             | Permanent    |
"""

import asyncio
import functools
import json
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

EXCERPT = 200
TRANSIENT_4XX = frozenset({408, 425, 429})
_json_text = functools.lru_cache(maxsize=64)(json.dumps)


@dataclass(frozen=True, slots=True)
class Delivered:
    latency: float
    status: int | None = 200


@dataclass(frozen=True, slots=True)
class Transient:
    reason: str
    latency: float
    retry_after: float | None = None
    status: int | None = None  # the HTTP status, when there was an answer


@dataclass(frozen=True, slots=True)
class Permanent:
    reason: str
    latency: float
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Unauthorized:
    reason: str
    latency: float
    status: int | None = None


Outcome = Delivered | Transient | Permanent | Unauthorized


def excerpt(body: bytes) -> str:
    text = body[:EXCERPT].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > EXCERPT else "")


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` in seconds; the HTTP-date form is rare for APIs and ignored."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


def classify(status: int, body: bytes, retry_after: str | None, latency: float) -> Outcome:
    if status == 200:
        try:
            payload = json.loads(body)
        except ValueError:
            return Transient(
                f"HTTP 200 with a body that is not JSON: {excerpt(body)}", latency, status=200
            )
        code = payload.get("code") if isinstance(payload, dict) else None
        if type(code) is int and code == 0:  # not `False`, not `0.0`: exactly the integer 0
            return Delivered(latency)
        return Transient(f"HTTP 200 without code 0: {excerpt(body)}", latency, status=200)
    reason = f"HTTP {status}" + (f": {excerpt(body)}" if body else "")
    if status in (401, 403):
        return Unauthorized(reason, latency, status)
    if status >= 500 or status in TRANSIENT_4XX:
        return Transient(reason, latency, retry_after_seconds(retry_after), status)
    return Permanent(reason, latency, status)


class ProbeClient:
    """Sends messages over one pool of keep-alive connections; never raises for the API's
    behaviour. Use as `async with ProbeClient(...) as probe: await probe.send(...)`."""

    def __init__(self, *, base_url: str, token: str, max_connections: int) -> None:
        self._base_url = str(URL(base_url.rstrip("/")))  # parsed once, kept in encoded form
        # Every request is the same POST of JSON: its headers are the session's, not merged
        # into each request.
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "ProbeClient":
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            raise_for_status=False,
            # The API authenticates by token: no cookies to keep, match or send.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, *, message_id: int, phone: str, text: str, timeout: float) -> Outcome:
        """POST /send/{id}; `timeout` bounds the whole exchange, connection included."""
        assert self._session is not None, "use ProbeClient as an async context manager"
        # {"id", "phone", "text"}, with the text (the same for a whole mailing) encoded once.
        body = f'{{"id": {message_id}, "phone": {int(phone)}, "text": {_json_text(text)}}}'
        started = time.monotonic()
        try:
            async with self._session.post(
                # The encoded base and digits: nothing to escape, so nothing to parse again.
                URL(f"{self._base_url}/send/{message_id}", encoded=True),
                data=body.encode(),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                payload = await response.read()
                latency = time.monotonic() - started
                return classify(
                    response.status, payload, response.headers.get("Retry-After"), latency
                )
        except TimeoutError:
            return Transient(f"timeout after {timeout:.1f}s", time.monotonic() - started)
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:EXCERPT] or type(exc).__name__
            return Transient(reason, time.monotonic() - started)
