"""Readiness: can this process do its work, i.e. reach the database and the broker?

Each check runs in a thread of its own and the answer waits for it at most `TIMEOUT` seconds,
so a dependency that hangs (a firewalled host, a server that accepts connections and never
answers) costs a probe half a second, never a stuck web worker.

The answer is public: it names the check that failed and the kind of error, never the driver's
message (which names hosts, ports, users); that goes to the log, once when a check starts
failing and once when it recovers. A check that is still running
when the next probe comes is waited for again rather than started twice; one that has hung
for `STALE` seconds is left to its thread, and a fresh one started.
"""

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import connection
from kombu import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from notifier.core import logging

log = logging.get_logger(__name__)
TIMEOUT = 0.5  # seconds a readiness answer may wait for its checks, all together
BROKER_TIMEOUT = 0.3  # seconds to connect to the broker, then again for its answer
STALE = 5.0  # seconds after which a check that has not returned is given up on
ERROR_EXCERPT = 200


def database_check() -> None:
    """`SELECT 1` on a connection of its own (this thread's), closed afterwards."""
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, false)", [str(int(TIMEOUT * 1000))]
                )
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


def broker_check() -> None:
    """The broker this process publishes wake-ups to answers (Redis: `PING`), or for the
    embedded file broker, its queue folder is there and writable."""
    url = settings.CELERY_BROKER_URL
    scheme = urlsplit(url).scheme
    if scheme == "filesystem":
        _check_folders(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    elif scheme in ("redis", "rediss"):
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=BROKER_TIMEOUT,
            socket_timeout=BROKER_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # one try: the probe itself repeats
        )
        try:
            client.ping()
        finally:
            client.close()
    else:
        # Any other transport kombu knows (AMQP, ...): one connection attempt, then let go.
        with Connection(url, connect_timeout=BROKER_TIMEOUT) as broker:
            broker.ensure_connection(max_retries=0)


def _check_folders(options: Mapping[str, Any]) -> None:
    for key in ("data_folder_in", "data_folder_out"):
        folder = options.get(key)
        if not folder:
            raise ValueError(f"the file broker has no {key}")
        # As the Celery app does when it is first configured, which may not have happened yet
        # in this process: what matters is that publishing would work.
        Path(folder).mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"broker folder {key} is not writable: {folder}")


CHECKS: dict[str, Callable[[], None]] = {"database": database_check, "broker": broker_check}


@dataclass
class _Run:
    """One execution of a check, which every probe arriving meanwhile waits for."""

    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None  # the kind of error, for the answer
    detail: str = ""  # its message, for the log
    ms: float = 0.0


_running: dict[str, _Run] = {}
_failing: dict[str, bool] = {}  # per check, as the last answer said
_lock = threading.Lock()


def readiness() -> dict[str, Any]:
    """`{"status": "ok" | "fail", "checks": {name: {"ok", "ms", "error"?}}}`, in at most
    `TIMEOUT` seconds."""
    deadline = time.monotonic() + TIMEOUT
    runs = {name: _start(name, check) for name, check in CHECKS.items()}
    checks = {name: _outcome(run, deadline) for name, run in runs.items()}
    for name, check in checks.items():
        _log_change(name, check, runs[name])
    ok = all(check["ok"] for check in checks.values())
    return {"status": "ok" if ok else "fail", "checks": checks}


def _start(name: str, check: Callable[[], None]) -> _Run:
    with _lock:
        run = _running.get(name)
        if run is not None and time.monotonic() - run.started < STALE:
            return run
        run = _running[name] = _Run()
    threading.Thread(
        target=_execute, args=(name, check, run), name=f"health-{name}", daemon=True
    ).start()
    return run


def _execute(name: str, check: Callable[[], None], run: _Run) -> None:
    try:
        check()
    except Exception as exc:  # whatever fails, the answer is the same: not ready
        run.error = type(exc).__name__
        run.detail = f"{type(exc).__name__}: {exc}"[:ERROR_EXCERPT]
    finally:
        run.ms = (time.monotonic() - run.started) * 1000
        with _lock:
            if _running.get(name) is run:
                del _running[name]
        run.done.set()


def _outcome(run: _Run, deadline: float) -> dict[str, Any]:
    if not run.done.wait(max(0.0, deadline - time.monotonic())):
        waited = time.monotonic() - run.started
        return {"ok": False, "ms": round(waited * 1000, 1), "error": f"no answer in {waited:.1f}s"}
    if run.error is not None:
        return {"ok": False, "ms": round(run.ms, 1), "error": run.error}
    return {"ok": True, "ms": round(run.ms, 1)}


def _log_change(name: str, check: dict[str, Any], run: _Run) -> None:
    failing = not check["ok"]
    with _lock:
        changed = _failing.get(name, False) != failing
        _failing[name] = failing
    if changed and failing:
        log.warning("readiness check failing", check=name, error=run.detail or check["error"])
    elif changed:
        log.info("readiness check passing again", check=name)
