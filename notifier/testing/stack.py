"""The whole system as separate processes, for integration tests and benchmarks: a Celery
worker, the reports process and beat started through the same entry scripts as the
Procfile (bin/worker, bin/reports, bin/beat), Redis (on PostgreSQL runs) or the file broker
(on SQLite runs), the simulator of the external API, and the test database."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until `predicate()` is truthy; fail the test with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def file_broker_options(folder: Path) -> dict[str, Any]:
    """The embedded file broker's options with its folders under `folder` (created)."""
    from django.conf import settings

    folders = {"data_folder_in": "queue", "data_folder_out": "queue"}
    folders |= {"processed_folder": "processed", "control_folder": "control"}
    for name in set(folders.values()):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        **{key: str(folder / name) for key, name in folders.items()},
    }


def point_publisher_at(broker_url: str, transport_options: dict[str, Any]) -> None:
    """Point this process's Celery publisher (the API's wake-ups) at another broker."""
    from celery import current_app

    current_app.conf.update(broker_url=broker_url, broker_transport_options=transport_options)
    # Drop the pools bound to the old broker; Celery makes new ones on the next publish.
    current_app._pool = None  # type: ignore[attr-defined]
    current_app.amqp._producer_pool = None  # type: ignore[attr-defined]


def published(queue_folder: Path) -> list[dict[str, Any]]:
    """The tasks waiting in a file broker's queue, oldest first: `{"task", "args", "eta",
    "expires", "queue"}` each."""
    tasks = []
    for path in sorted(queue_folder.glob("*.msg"), key=lambda p: int(p.name.split("_")[0])):
        message = json.loads(path.read_text())
        headers = message["headers"]
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        tasks.append(
            {
                "task": headers["task"],
                "args": args,
                "eta": headers.get("eta"),
                "expires": headers.get("expires"),
                "queue": path.name.split(".")[-2],
            }
        )
    return tasks


def session_database_url() -> str:
    """The URL of the database this test session created, for processes of our own."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class Redis:
    """A throwaway redis-server on a free loopback port; can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=10, what="redis-server to accept connections")

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class PostgresServer:
    """The throwaway cluster of `scripts/with-postgres`, which the tests may stop and start
    again (with the options it was started with)."""

    def __init__(self) -> None:
        self.data = os.environ["PG_CLUSTER_DIR"]
        self.pg_ctl = str(Path(os.environ["PG_CLUSTER_BIN"]) / "pg_ctl")
        self.run_as = os.environ.get("PG_CLUSTER_RUN_AS", "").split()

    @classmethod
    def available(cls) -> bool:
        return connection.vendor == "postgresql" and "PG_CLUSTER_DIR" in os.environ

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", self.data, "-w", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def start(self) -> None:
        # `restart` starts a stopped server too, with the options of its first start.
        self._ctl("-l", str(Path(self.data).parent / "server.log"), "restart")
        connection.close()  # this process's connection died with the server

    def restart(self) -> None:
        self._ctl("-m", "fast", "-l", str(Path(self.data).parent / "server.log"), "restart")
        connection.close()


class Stack:
    """Worker and beat processes wired to the test database, a broker and the simulator."""

    def __init__(self, *, workdir: Path, broker_url: str, probe_url: str, probe_token: str) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": session_database_url(),
            "VAR_DIR": str(workdir),
            "CELERY_BROKER_URL": broker_url,
            "PROBE_URL": probe_url,
            "PROBE_TOKEN": probe_token,
            "LOG_LEVEL": "INFO",
            # Short timings, so that faults play out in seconds.
            "SENDING_REQUEST_TIMEOUT": "2",
            "SENDING_LEASE_MARGIN": "1",
            "SENDING_BACKOFF_BASE": "0.2",
            "SENDING_BACKOFF_MAX": "2",
            "SENDING_AUTH_PAUSE": "0.5",
            "SENDING_IN_FLIGHT": "20",
            "SENDING_DISPATCH_BUDGET": "10",
            # One send loop per started worker: a test starts as many as it needs.
            "WORKER_PROCESSES": "1",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Path] = []

    def configure(self, **settings: str) -> None:
        self.env.update(settings)

    def start(self, name: str, *, label: str = "", env: dict[str, str] | None = None) -> None:
        """Start `worker`, `reports` or `beat` (a Celery worker is waited for until it is
        ready), known as `label` (default: `name`) to `kill`: label more than one apart.
        `env` adds to the environment of this process alone."""
        label = label or name
        assert label not in self.processes, f"{label} is running already"
        log = self.workdir / f"{label}-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.processes[label] = subprocess.Popen(
                [str(ROOT / "bin" / name)],
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if name in ("worker", "reports"):
            wait_for(lambda: b" ready." in log.read_bytes(), timeout=30, what=f"{name} ready")

    def kill(self, label: str, sig: signal.Signals = signal.SIGKILL) -> None:
        process = self.processes.pop(label)
        os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop(self) -> None:
        for label in list(self.processes):
            self.kill(label, signal.SIGTERM if label.startswith("beat") else signal.SIGKILL)

    def log_text(self, label: str = "") -> str:
        """What the processes wrote, or only those started as `label`."""
        logs = [log for log in self.logs if not label or log.stem.rpartition("-")[0] == label]
        return "\n".join(log.read_text(errors="replace") for log in logs if log.exists())
