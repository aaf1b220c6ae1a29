"""Run the simulator as a subprocess for tests and benchmarks, and steer it (stdlib only)."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_READY = re.compile(r"API (?P<api>\S+) control (?P<control>\S+)")


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in sorted(value))
    return str(value)


class ProbeProcess:
    """``python -m probe_sim`` on free loopback ports, stopped on exit.

    ``faults`` are start-up flags by their control names (``error_rate=0.1``,
    ``reject_ids=[7]``); ``reset()`` returns to them. ``token=None`` accepts any bearer token.
    """

    def __init__(
        self,
        *,
        token: str | None = "probe-test-token",  # noqa: S107 - a test fixture's token
        seed: int | None = 0,
        host: str = "127.0.0.1",
        startup_timeout: float = 10.0,
        **faults: Any,
    ) -> None:
        self.token = token
        self.seed = seed
        self.host = host
        self.startup_timeout = startup_timeout
        self.faults_at_start = faults
        self.url = ""  # e.g. http://127.0.0.1:PORT/v1
        self.control_url = ""  # e.g. http://127.0.0.1:PORT/control
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ProbeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None, "not started"
        return port

    def start(self) -> ProbeProcess:
        args = [sys.executable, "-m", "probe_sim", "--host", self.host, "--port", "0"]
        args += ["--control-port", "0", "--log-level", "WARNING"]
        if self.token is not None:
            args += ["--token", self.token]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        for name, value in self.faults_at_start.items():
            args += [f"--{name.replace('_', '-')}", _flag_value(value)]
        # The child's config is exactly these flags, not whatever PROBE_SIM_* the caller has.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROBE_SIM_")}
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)  # noqa: S603
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        readable, _, _ = select.select([self._process.stdout], [], [], self.startup_timeout)
        line = self._process.stdout.readline() if readable else ""
        match = _READY.search(line)
        if match is None:
            code = self._process.poll()
            raise RuntimeError(f"probe_sim did not start (exit code {code}); see its stderr")
        self.url, self.control_url = match["api"], match["control"]
        while True:
            try:
                self._call("GET", self.control_url.removesuffix("/control") + "/health")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> int | None:
        """Terminate (SIGTERM, then SIGKILL after 5 s) and return the exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    # The control client

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control("GET", "/faults")
        return result

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change some faults; returns all of them. ValueError if the simulator refuses."""
        if isinstance(changes.get("reject_ids"), set | frozenset):
            changes["reject_ids"] = sorted(changes["reject_ids"])
        result: dict[str, Any] = self._control("PATCH", "/faults", changes)
        return result

    def outage(self, seconds: float) -> None:
        self._control("POST", "/outage", {"seconds": seconds})

    def report(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control("GET", "/report")
        return result

    def deliveries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._control("GET", "/deliveries")
        return result

    def requests(self, after: float | None = None) -> list[dict[str, Any]]:
        query = "" if after is None else f"?after={after!r}"
        result: list[dict[str, Any]] = self._control("GET", "/requests" + query)
        return result

    def reset(self) -> None:
        self._control("POST", "/reset")

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, self.control_url + path, body)

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 400:
                raise ValueError(json.loads(exc.read()).get("error")) from None
            raise
