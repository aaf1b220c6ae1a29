"""A database outage, as the web process answers it: a 503 with `Retry-After` to every
request meanwhile, and two log lines per outage (when it starts, when it ends) instead of a
traceback per request.

The start is the first request that fails to reach the database; the end is the next
connection that opens (`connection_created`), whoever opened it.
"""

import threading
import time
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from notifier.core import logging
from notifier.core.errors import error_body, mark_logged

log = logging.get_logger(__name__)
# What a driver raises when the server is away, refuses connections, or is too busy to answer
# in time (a statement timeout, SQLite's lock timeout): all of them pass.
DATABASE_DOWN_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_STATUS = 503
UNAVAILABLE_CODE = "database_unavailable"
UNAVAILABLE_MESSAGE = "The database is unavailable; try again in a few seconds."
RETRY_AFTER_HEADERS = {"Retry-After": str(RETRY_AFTER_SECONDS)}

_lock = threading.Lock()
_down_since: float | None = None


def database_unavailable(exc: BaseException) -> None:
    """Note that a request could not reach the database; logs only the first of an outage."""
    global _down_since
    with _lock:
        if _down_since is not None:
            return
        _down_since = time.monotonic()
    # The driver's message names the host and port: for the log, never for the caller.
    log.warning(
        "database unavailable: answering 503 until it is back",
        error=f"{type(exc).__name__}: {exc}"[:300],
    )


def database_reachable(**kwargs: Any) -> None:
    """`connection_created` receiver: a connection opened, so an outage (if any) is over."""
    global _down_since
    with _lock:
        since, _down_since = _down_since, None
    if since is not None:
        log.warning("database available again", outage_seconds=round(time.monotonic() - since, 1))


def unavailable_body() -> dict[str, Any]:
    return error_body(UNAVAILABLE_STATUS, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE, {})


def unavailable_response() -> JsonResponse:
    response = JsonResponse(
        unavailable_body(), status=UNAVAILABLE_STATUS, headers=RETRY_AFTER_HEADERS
    )
    mark_logged(response)
    return response
