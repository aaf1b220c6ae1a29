"""Raw HTTP against the simulated API through http.client, so each failure shows as it is."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from probe_sim.testing import ProbeProcess

TOKEN = "probe-test-token"
_PROBE_TOKEN = object()  # default authorization: the probe's own token


@dataclass
class Reply:
    status: int
    body: bytes
    headers: http.client.HTTPMessage


def message(msg_id: int, phone: int = 79161234567, text: str = "hello") -> dict[str, Any]:
    return {"id": msg_id, "phone": phone, "text": text}


def connect(probe: ProbeProcess, timeout: float = 5.0) -> http.client.HTTPConnection:
    """A keep-alive connection to the API port."""
    parts = urlsplit(probe.url)
    assert parts.hostname is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def post(
    probe: ProbeProcess,
    msg_id: int | str,
    payload: Any = None,
    *,
    authorization: Any = _PROBE_TOKEN,
    timeout: float = 5.0,
    connection: http.client.HTTPConnection | None = None,
) -> Reply:
    """POST /send/{msg_id}; ``payload`` bytes go as they are, anything else as JSON.

    Without ``connection`` each call uses a fresh one, so a dropped request spoils nothing.
    """
    if payload is None:
        payload = message(int(msg_id))
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if authorization is _PROBE_TOKEN:
        authorization = f"Bearer {probe.token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    conn = connection or connect(probe, timeout)
    try:
        conn.request("POST", f"{urlsplit(probe.url).path}/send/{msg_id}", body, headers)
        response = conn.getresponse()
        return Reply(response.status, response.read(), response.headers)
    finally:
        if connection is None:
            conn.close()


def is_ok(body: bytes) -> bool:
    try:
        return bool(json.loads(body) == {"code": 0, "message": "OK"})
    except ValueError:
        return False
