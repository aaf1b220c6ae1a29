"""The benchmark suite: `make bench` (full size) or `make bench SIZE=small` (seconds).

Runs against a real PostgreSQL (started by scripts/with-postgres), Redis, a real worker
through bin/worker, and the simulator on loopback. Every figure is printed beside its target
and a ceiling measured in the same run, and the report goes to docs/benchmarks.md.
"""

import argparse
import asyncio
import atexit
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probe_sim.testing import ProbeProcess

SIZES = {
    "small": {"dispatch": 2_000, "fanout": 20_000, "stats": 100_000, "start": 20},
    "full": {"dispatch": 100_000, "fanout": 1_000_000, "stats": 10_000_000, "start": 100},
}
IN_FLIGHT = 100
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Figure:
    scenario: str
    name: str
    value: float
    unit: str
    target: str
    passed: bool | None  # None: informational


def setup(workdir: Path) -> None:
    """Django against the benchmark database, with a Redis broker of our own."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("run the benchmarks through `make bench` (PostgreSQL via scripts/with-postgres)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["VAR_DIR"] = str(workdir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / "metrics")
    (workdir / "metrics").mkdir()
    from notifier.testing.stack import Redis

    redis = Redis(workdir)
    redis.start()
    atexit.register(redis.stop)
    os.environ["CELERY_BROKER_URL"] = redis.url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def sql(statement: str, params: list | None = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return cursor.fetchall() if cursor.description else []


def reset_data(clients: int) -> None:
    """Exactly `clients` clients and no mailings, messages or leftovers."""
    sql("TRUNCATE mailings_message, mailings_mailing, clients_client RESTART IDENTITY CASCADE")
    sql(
        "INSERT INTO clients_client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " SELECT '7' || lpad(g::text, 10, '0'), '916', 't' || (g %% 10), 'UTC', now(), now()"
        " FROM generate_series(1, %s) g",
        [clients],
    )
    sql("ANALYZE")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# -- 1. dispatch throughput ------------------------------------------------------------------


def ceiling(probe_url: str, token: str, n: int) -> float:
    """A bare async client: no database, no Celery, the same simulator and in-flight limit."""
    import aiohttp

    async def run() -> float:
        limit = asyncio.Semaphore(IN_FLIGHT)
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def one(i: int) -> None:
                async with (
                    limit,
                    session.post(
                        f"{probe_url}/send/{i}", json={"id": i, "phone": 79160000000, "text": "x"}
                    ) as response,
                ):
                    await response.read()

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(1, n + 1)))
            return n / (time.perf_counter() - started)

    return asyncio.run(run())


def dispatch(n: int, latency_ms: int, probe: "ProbeProcess") -> tuple[float, float]:
    from notifier.mailings.services import mailing_create

    reset_data(n)
    probe.reset()
    probe.set_faults(latency_ms=latency_ms)
    bare = ceiling(probe.url, probe.token or "", n)
    probe.reset()
    probe.set_faults(latency_ms=latency_ms)
    started = datetime.now(UTC)
    mailing_create(start_at=started, end_at=started + timedelta(hours=1), text="Benchmark", tags=[])
    deadline = time.monotonic() + max(600, n / 50)
    while time.monotonic() < deadline:
        ((sent, last),) = sql(
            "SELECT count(*) FILTER (WHERE status = 'sent'), max(sent_at) FROM mailings_message"
        )
        if sent == n:
            return n / (last - started).total_seconds(), bare
        time.sleep(0.5)
    raise RuntimeError(f"dispatch of {n} did not finish: {sent} sent")


@contextmanager
def running_system() -> Iterator["ProbeProcess"]:
    """The simulator, a worker and beat, as in production; yields the simulator."""
    from notifier.testing.stack import Stack
    from probe_sim.testing import ProbeProcess

    with tempfile.TemporaryDirectory() as logs, ProbeProcess(seed=1) as probe:
        stack = Stack(
            workdir=Path(logs),
            broker_url=os.environ["CELERY_BROKER_URL"],
            probe_url=probe.url,
            probe_token=probe.token or "",
        )
        # Production settings for the worker: debug off (Django's debug cursor wrapper and
        # query log cost a fifth of a worker's time), logs at INFO as JSON.
        stack.configure(
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            SENDING_IN_FLIGHT=str(IN_FLIGHT),
            LOG_LEVEL="INFO",
            SENDING_REQUEST_TIMEOUT="10",
        )
        stack.start("worker")
        stack.start("beat")
        try:
            yield probe
        finally:
            stack.stop()


def scenario_dispatch(n: int, figures: list[Figure]) -> None:
    with running_system() as probe:
        for latency, target in ((0, 0.5), (100, 0.8)):
            service, bare = dispatch(n, latency, probe)
            ratio = service / bare
            label = f"{n:,} messages, simulator at {latency} ms"
            figures += [
                Figure("dispatch", f"{label}: service", service, "msg/s", "", None),
                Figure("dispatch", f"{label}: ceiling", bare, "msg/s", "", None),
                Figure("dispatch", f"{label}: ratio", ratio, "x", f">= {target}", ratio >= target),
            ]
            print_figures(figures[-3:])


# -- 2. fan-out ------------------------------------------------------------------------------


def scenario_fanout(n: int, figures: list[Figure]) -> None:
    """The service's fan-out against a raw INSERT ... SELECT of the same rows, alternated."""
    from notifier.mailings.models import Mailing
    from notifier.sending import store

    reset_data(n)
    raw_times, service_times = [], []
    for _ in range(2):
        now = datetime.now(UTC)
        mailings = [
            Mailing.objects.create(start_at=now, end_at=now + timedelta(hours=1), text="x")
            for _ in range(2)
        ]
        raw_times.append(
            timed(
                partial(
                    sql,
                    "INSERT INTO mailings_message (mailing_id, client_id, phone, status,"
                    " attempts, last_error, created_at, next_attempt_at)"
                    " SELECT %s, id, phone, 'pending', 0, '', now(), now() FROM clients_client",
                    [mailings[0].id],
                )
            )
        )
        service_times.append(
            timed(partial(store.mailing_fan_out, mailing_id=mailings[1].id, now=now))
        )
        sql("TRUNCATE mailings_message")
    raw, service = statistics.median(raw_times), statistics.median(service_times)
    figures += [
        Figure("fanout", f"{n:,} messages: raw INSERT ... SELECT", raw, "s", "", None),
        Figure("fanout", f"{n:,} messages: service", service, "s", "", None),
        Figure("fanout", "ratio service / raw", service / raw, "x", "<= 1.5", service / raw <= 1.5),
    ]
    print_figures(figures[-3:])


# -- 3. statistics at scale -----------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def scenario_stats(n: int, figures: list[Figure]) -> None:
    """`n` messages over 1,000 mailings (fewer when small), every status; the two statistics
    endpoints timed through the whole Django stack, 200 requests each."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    mailings = min(1000, max(10, n // 10_000))
    reset_data(0)
    sql(
        "INSERT INTO mailings_mailing (start_at, end_at, text, operator_codes, tags, created_at,"
        " updated_at, fanned_out_at) SELECT now() - interval '1 hour', now() + interval '1 day',"
        " 'x', '[]', '[]', now(), now(), now() FROM generate_series(1, %s)",
        [mailings],
    )
    sql(
        "INSERT INTO mailings_message (mailing_id, phone, status, attempts, last_error,"
        " created_at, next_attempt_at, sent_at)"
        " SELECT 1 + g %% %s, '79160000000',"
        " (ARRAY['pending','sending','sent','failed','expired','cancelled'])[1 + g %% 6],"
        " 1, '', now(), now(), CASE WHEN g %% 6 = 2 THEN now() END"
        " FROM generate_series(1, %s) g",
        [mailings, n],
    )
    sql("VACUUM ANALYZE mailings_message")
    user, _ = get_user_model().objects.get_or_create(username="bench")
    api = APIClient(SERVER_NAME="localhost")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    for label, path, target in (
        ("GET /api/mailings/stats/", lambda i: "/api/mailings/stats/", 50),
        ("GET /api/mailings/{id}/stats/", lambda i: f"/api/mailings/{1 + i % mailings}/stats/", 20),
    ):
        times = []
        for i in range(200):
            started = time.perf_counter()
            response = api.get(path(i))
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        name = f"{n:,} messages, {mailings} mailings: {label}"
        figures += [
            Figure("stats", f"{name} p50", p50, "ms", "", None),
            Figure("stats", f"{name} p95", p95, "ms", f"<= {target}", p95 <= target),
        ]
        print_figures(figures[-2:])


# -- 4. start precision ----------------------------------------------------------------------


def scenario_start(n: int, figures: list[Figure]) -> None:
    """`n` mailings (to one client), starting 0.25 s apart: lag from each `start_at` to its
    request at the simulator."""
    from notifier.mailings.models import Message
    from notifier.mailings.services import mailing_create

    reset_data(1)
    with running_system() as probe:
        first = datetime.now(UTC) + timedelta(seconds=5)
        for i in range(n):
            start = first + timedelta(seconds=0.25 * i)
            mailing_create(start_at=start, end_at=start + timedelta(minutes=10), text="x")
        deadline = time.monotonic() + 60 + 0.25 * n
        while time.monotonic() < deadline:
            if probe.report()["delivered"] >= n:
                break
            time.sleep(0.5)
        first_request: dict[int, float] = {}
        for request in probe.requests():
            first_request.setdefault(request["id"], request["time"])
        lags = []
        for mailing_id, start_at in sorted(
            {(m.mailing_id, m.mailing.start_at) for m in Message.objects.select_related("mailing")}
        ):
            ids = Message.objects.filter(mailing_id=mailing_id).values_list("id", flat=True)
            lags.append(min(first_request[i] for i in ids) - start_at.timestamp())
    p50, p95 = percentile(lags, 0.5), percentile(lags, 0.95)
    figures += [
        Figure("start", f"{n} mailings: lag start_at -> first request, p50", p50, "s", "", None),
        Figure("start", f"{n} mailings: lag p95", p95, "s", "<= 1", p95 <= 1),
    ]
    print_figures(figures[-2:])


# -- report ----------------------------------------------------------------------------------


def verdict(figure: Figure) -> str:
    return "" if figure.passed is None else ("PASS" if figure.passed else "FALLS SHORT")


def print_figures(figures: list[Figure]) -> None:
    for f in figures:
        print(f"{f.scenario:9} {f.name:55} {f.value:12.2f} {f.unit:6} {f.target:8} {verdict(f)}")


def write_report(figures: list[Figure], size: str) -> None:
    from django.db import connection

    (pg_version,) = sql("SHOW server_version")[0]
    lines = [
        "# Benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `make bench SIZE={size}` on"
        f" {os.cpu_count()} cores, {_memory()} memory, Python {platform.python_version()},"
        f" PostgreSQL {pg_version} ({connection.vendor}), one worker process with"
        f" {IN_FLIGHT} requests in flight, the simulator on loopback.",
        "",
        *(
            [
                "A small run: the targets are meant for the full sizes (`make bench`), and small",
                "figures include start-up costs that a full run amortises.",
                "",
            ]
            if size == "small"
            else []
        ),
        "| scenario | figure | value | target | |",
        "|---|---|---|---|---|",
        *(
            f"| {f.scenario} | {f.name} | {f.value:,.2f} {f.unit} | {f.target} | {verdict(f)} |"
            for f in figures
        ),
        "",
    ]
    path = ROOT / "docs" / "benchmarks.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"report: {path}")


def _memory() -> str:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return f"{pages / 2**30:.0f} GiB"


SCENARIOS = {
    "dispatch": scenario_dispatch,
    "fanout": scenario_fanout,
    "stats": scenario_stats,
    "start": scenario_start,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], help="default: all")
    parser.add_argument("--size", default="full", choices=list(SIZES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as workdir:
        setup(Path(workdir))
        figures: list[Figure] = []
        for name in args.scenarios or SCENARIOS:
            SCENARIOS[name](SIZES[args.size][name], figures)
        write_report(figures, args.size)


if __name__ == "__main__":
    main()
