"""A first run as the README tells it, on a fresh copy of the repository: `make run` with
PORT=8001 (once the simulator's own port), then `make superuser` without questions, a session
against the API, and the README's log commands on the log it wrote.

The copy has no `.env`, no `var/` and a clean environment: its SQLite database, broker folders
and logs are its own; only the virtualenv is the one running the tests (`make -o` never
touches it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from notifier.testing.logs import check_readme_log_commands, events, readme_log_commands
from notifier.testing.stack import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]
# What a clone does not have: local state, caches, secrets.
NOT_IN_A_CLONE = [".git", ".venv", "var", "staticfiles", ".env", "__pycache__", "*.pyc"]
NOT_IN_A_CLONE += [".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"]
# A login shell's environment, nothing of this project's.
KEPT = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TERM")
CLIENTS = 11  # ids 1 and 11: the commands must tell them apart
PASSWORD = "first-Run-password-7"
FORGED_PATH = "/api/clients/%1B%5B2J%1B%5B31mFORGED/"
ONCE = "first-run-once"  # the request id of a request that must log one line


def ports_from(base: int) -> list[int]:
    return [base, base + 1, base + 2]  # the API, the simulator's API, its control port


def free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def api_port() -> int:
    """8001, the port the issue found taken by the simulator; when something else on this
    machine holds one of its ports, any free one proves the same wiring."""
    base = 8001
    while not all(free(p) for p in ports_from(base)):
        base = free_port()
    return base


@dataclass
class FirstRun:
    checkout: Path
    port: int
    env: dict[str, str]
    output: str = ""
    superuser: subprocess.CompletedProcess[str] | None = None
    manage_py: subprocess.CompletedProcess[str] | None = None
    report: subprocess.CompletedProcess[str] | None = None
    ids: dict[str, int] = field(default_factory=dict)
    delivered: int = 0

    @property
    def log(self) -> list[str]:
        return (self.checkout / "var/log/notifier.jsonl").read_text().splitlines()

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                status, content = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, content = error.code, error.read()
        return status, json.loads(content) if content else None


def copy_of_the_repository(folder: Path) -> Path:
    checkout = folder / "notifier"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    (checkout / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return checkout


# -o: the virtualenv counts as made, whatever the dates of the copied files say.
MAKE = ["make", "-o", ".venv/.installed"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    checkout = copy_of_the_repository(tmp_path_factory.mktemp("first-run"))
    port = api_port()
    env = {k: os.environ[k] for k in KEPT if k in os.environ}
    run = FirstRun(checkout=checkout, port=port, env=env)
    out = checkout.parent / "make-run.out"
    with open(out, "wb") as sink:
        make_run = subprocess.Popen(
            [*MAKE, "run"],
            cwd=checkout,
            env={**env, "PORT": str(port)},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: (
                make_run.poll() is not None
                or (b" ready." in out.read_bytes() and run.call("GET", "/health/live")[0] == 200)
            ),
            timeout=180,
            interval=0.5,
            what="make run: the web answering and the worker ready",
        )
        assert make_run.poll() is None, out.read_text(errors="replace")
        session(run)
    finally:
        stop(make_run, out)
        run.output = out.read_text(errors="replace")
    return run


def session(run: FirstRun) -> None:
    """What the README has a newcomer do, in a second terminal while `make run` runs."""
    run.manage_py = subprocess.run(
        [".venv/bin/python", "manage.py", "check"],
        cwd=run.checkout,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    run.report = subprocess.run(
        [".venv/bin/python", "manage.py", "send_report", "--dry-run"],
        cwd=run.checkout,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    run.superuser = subprocess.run(
        [*MAKE, "superuser"],
        cwd=run.checkout,
        env={
            **run.env,
            "DJANGO_SUPERUSER_USERNAME": "operator",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            "DJANGO_SUPERUSER_EMAIL": "operator@example.com",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    status, body = run.call(
        "POST", "/api/auth/token/", {"username": "operator", "password": PASSWORD}
    )
    assert status == 200, (status, body, run.superuser.stdout, run.superuser.stderr)
    auth = {"Authorization": f"Bearer {body['token']}"}
    clients = [
        run.call("POST", "/api/clients/", {"phone": f"791600000{i:02}"}, **auth)[1]["id"]
        for i in range(1, CLIENTS + 1)
    ]
    now = datetime.now(UTC)
    status, mailing = run.call(
        "POST",
        "/api/mailings/",
        {
            "start_at": now.isoformat(),
            "end_at": (now + timedelta(hours=1)).isoformat(),
            "text": "Hi",
            "filter": {},
        },
        **auth,
    )
    assert status == 201, mailing
    sent = f"/api/mailings/{mailing['id']}/messages/?status=sent"
    wait_for(
        lambda: run.call("GET", sent, **auth)[1]["count"] == CLIENTS,
        timeout=60,
        interval=0.5,
        what="every message sent",
    )
    run.delivered = simulator_report(run.port + 2)["delivered"]
    message = run.call("GET", sent, **auth)[1]["results"][0]
    client = message["client_id"]
    assert run.call("PATCH", f"/api/clients/{client}/", {"tag": "vip"}, **auth)[0] == 200
    assert run.call("GET", f"/api/clients/{clients[4]}/", **auth, **{"X-Request-ID": ONCE})[0]
    assert run.call("GET", FORGED_PATH, **auth)[0] == 404
    assert run.call("DELETE", f"/api/clients/{client}/", **auth)[0] == 204
    assert run.call("DELETE", f"/api/mailings/{mailing['id']}/", **auth)[0] == 204
    run.ids = {"mailing_id": mailing["id"], "message_id": message["id"], "client_id": client}
    run.ids["once"] = clients[4]


def simulator_report(control_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{control_port}/control/report"
    with urllib.request.urlopen(url, timeout=10) as response:
        report: dict[str, Any] = json.loads(response.read())
    return report


def stop(make_run: subprocess.Popen[bytes], out: Path) -> None:
    """Ctrl-C, as a user stops it: honcho stops every process. Whatever outlives it (its
    processes run in sessions of their own) is killed by the pids honcho printed."""
    if make_run.poll() is None:
        os.killpg(make_run.pid, signal.SIGINT)
        try:
            make_run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(make_run.pid, signal.SIGKILL)
            make_run.wait()
    for pid in re.findall(rb" started \(pid=(\d+)\)", out.read_bytes()):
        with contextlib.suppress(ProcessLookupError):  # stopped already, as it should have
            os.killpg(int(pid), signal.SIGKILL)


def test_the_first_run_writes_a_local_env_so_that_manage_py_needs_no_variables(first_run):
    env = (first_run.checkout / ".env").read_text()
    assert "DJANGO_DEBUG=1\n" in env
    (key,) = re.findall(r"^DJANGO_SECRET_KEY=(\S+)$", env, flags=re.MULTILINE)
    assert len(key) >= 50
    # Before, without DJANGO_DEBUG=1: ImproperlyConfigured: Set the DJANGO_SECRET_KEY ...
    assert first_run.manage_py is not None
    assert first_run.manage_py.returncode == 0, first_run.manage_py.stderr


def test_make_superuser_takes_the_user_from_the_environment(first_run):
    assert first_run.superuser is not None
    assert first_run.superuser.returncode == 0, first_run.superuser.stderr
    assert "Superuser created successfully." in first_run.superuser.stdout


def test_port_8001_puts_the_simulator_on_the_next_ports_and_the_api_on_loopback(first_run):
    """The web on PORT, the simulator on PORT+1 (control PORT+2), and the worker sending to
    it: every message reached it. Before, the simulator took 8001 whatever PORT said, and the
    web could not start."""
    port = first_run.port
    assert f"Listening at: http://127.0.0.1:{port} " in first_run.output
    assert (
        f"probe_sim: API http://127.0.0.1:{port + 1}/v1 control http://127.0.0.1:{port + 2}/control"
    ) in first_run.output
    assert "Address already in use" not in first_run.output
    assert first_run.delivered == CLIENTS


def test_make_run_starts_the_reports_process_and_the_report_needs_no_settings(first_run):
    """The reports process (bin/reports) is up beside the worker, consuming its own queue;
    yesterday's report prints without a mail server or any variable."""
    assert re.search(r"reports\.1 +\| .*reports-\d+@\S+ ready\.", first_run.output)
    assert first_run.report is not None
    assert first_run.report.returncode == 0, first_run.report.stderr
    assert first_run.report.stdout.startswith("Subject: Notifier daily report ")
    assert "\nMailings\n--------\n" in first_run.report.stdout


def test_one_line_per_http_request(first_run):
    """The app's line, with its request id and what it was about; no access log beside it."""
    path = f"/api/clients/{first_run.ids['once']}/"
    assert len([line for line in first_run.output.splitlines() if path in line]) == 1
    (line,) = [e for e in events(first_run.log) if e.get("request_id") == ONCE]
    assert (line["event"], line["path"], line["client_id"]) == (
        "request",
        path,
        first_run.ids["once"],
    )


def test_start_up_and_the_session_say_nothing_alarming(first_run):
    """Once, kombu warned three times that no broker host was given (web, worker, beat)."""
    for alarming in ("No hostname was supplied", "Traceback", "UserWarning", "[error", "ERROR"):
        assert alarming not in first_run.output


def test_the_console_shows_a_forged_path_escaped(first_run):
    assert "\x1b" not in first_run.output
    assert r"path='/api/clients/\x1b[2J\x1b[31mFORGED/'" in first_run.output


def test_the_log_file_has_json_lines_with_iso_datetimes(first_run):
    log = first_run.log
    assert len(events(log)) == len(log)  # every line one JSON object
    (created,) = [e for e in events(log) if e["event"] == "mailing created"]
    assert datetime.fromisoformat(created["start_at"]).tzinfo is not None


def test_the_readme_log_commands_find_every_line_about_an_id(first_run):
    check_readme_log_commands(
        readme_log_commands(docker=False),
        log=first_run.log,
        ids={k: v for k, v in first_run.ids.items() if k != "once"},
        cwd=first_run.checkout,
        env=first_run.env,
    )
