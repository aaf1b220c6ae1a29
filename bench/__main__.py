"""The benchmark suite: `make bench` (full size) or `make bench SIZE=small` (seconds).

Runs against a real PostgreSQL (started by scripts/with-postgres), Redis, a real worker
through bin/worker, and the simulator on loopback. Every figure is printed beside its target
and a ceiling measured in the same run, and the report (benchmarks.md and its plots) goes to
var/bench/, untracked; `--out docs` (`make bench-report`) rewrites the committed one.
"""

import argparse
import atexit
import math
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import measure, report
from bench.results import Figure, Results, Run, ratio_to_ceiling, shown, verdict

if TYPE_CHECKING:
    from notifier.testing.stack import Stack
    from probe_sim.testing import ProbeProcess

SIZES: dict[str, dict[str, Any]] = {
    "small": {
        "dispatch": 2_000,
        "defaults": 5_000,
        "fanout": 20_000,
        "stats": 100_000,
        "start": 20,
        "growth": ([1_000, 5_000, 20_000], [1, 2], 5_000),
        "report": 100_000,
    },
    "full": {
        "dispatch": 100_000,
        "defaults": 100_000,
        "fanout": 1_000_000,
        "stats": 10_000_000,
        "start": 100,
        # Messages at one worker; worker processes at the middle size.
        "growth": ([10_000, 100_000, 1_000_000], [1, 2, 4], 100_000),
        "report": 10_000_000,
    },
}
LATENCIES = {0: 0.5, 10: None, 100: 0.8}  # ms: the target ratio to the ceiling, if any
DEFAULT_TARGETS = {0: 0.5, 100: 0.8}  # the same, for the service at its default settings
REPEATS = {0: 3, 10: 3, 100: 1}  # ceiling and service alternated; medians (100 ms is steady)
MEMORY_TARGET_MB = 200
IN_FLIGHT = 100
# Scale-out is by worker processes (each has one send loop, bound to one core by the GIL):
# the dispatch scenario runs one per core, as a deployment on this machine would.
DISPATCH_WORKERS = min(os.cpu_count() or 1, IN_FLIGHT)
DISPATCH_IN_FLIGHT = IN_FLIGHT // DISPATCH_WORKERS  # per worker
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "var" / "bench"  # a run's report, unless asked for the committed one
PROFILE = RESULTS / "worker-profile.txt"  # the raw stacks, never committed
REDIS_PID = 0  # the benchmark's own redis-server, once started


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
    global REDIS_PID
    REDIS_PID = redis.pid
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


@dataclass
class System:
    probe: "ProbeProcess"
    stack: "Stack"
    workers: list[int]  # process ids
    components: dict[str, list[int]]  # process ids by component, for CPU accounting


def dispatch(scenario: str, n: int, latency_ms: int, system: System) -> Run:
    """Send one mailing to `n` clients; the rate counts from its creation to the last `sent`."""
    from notifier.sending.services import mailing_create

    system.probe.reset()
    system.probe.set_faults(latency_ms=latency_ms)
    cpu_before = measure.cpu_seconds(system.components)
    started = datetime.now(UTC)
    mailing_create(start_at=started, end_at=started + timedelta(hours=1), text="Benchmark", tags=[])
    deadline = time.monotonic() + max(600, n / 50)
    while time.monotonic() < deadline:
        ((sent, last),) = sql(
            "SELECT count(*) FILTER (WHERE status = 'sent'), max(sent_at) FROM mailings_message"
        )
        if sent == n:
            cpu = measure.cpu_us_per_item(system.components, since=cpu_before, items=n)
            return Run(
                scenario,
                n,
                latency_ms,
                len(system.workers),
                n / (last - started).total_seconds(),
                cpu,
                [measure.peak_rss_mb(pid) for pid in system.workers],
            )
        time.sleep(0.5)
    raise RuntimeError(f"dispatch of {n} did not finish: {sent} sent")


def ceiling(n: int, latency_ms: int, system: System, *, in_flight: int = IN_FLIGHT) -> Run:
    """A bare async client: no database, no Celery, the same simulator."""
    from notifier.testing.bare import send_all

    probe = system.probe
    probe.reset()
    probe.set_faults(latency_ms=latency_ms)
    cpu_before = measure.cpu_seconds(system.components)
    rate, _ = send_all(probe.url, probe.token or "", count=n, in_flight=in_flight)
    cpu = measure.cpu_us_per_item(system.components, since=cpu_before, items=n)
    return Run("dispatch", n, latency_ms, 0, rate, cpu, [])


@contextmanager
def running_system(
    *, workers: int = 1, in_flight: int = IN_FLIGHT, defaults: bool = False
) -> Iterator[System]:
    """The simulator, `workers` worker processes (`in_flight` requests each) and beat; with
    `defaults`, one bin/worker as the Procfile starts it, every engine setting at its
    default (a worker process per core, the in-flight limit found below its maximum)."""
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
            SENDING_IN_FLIGHT=str(in_flight),
            LOG_LEVEL="INFO",
            SENDING_REQUEST_TIMEOUT="10",
        )
        if defaults:
            for name in [n for n in stack.env if n.startswith("SENDING_")] + ["WORKER_PROCESSES"]:
                del stack.env[name]
            workers = 1
        try:
            for i in range(workers):
                stack.start("worker", label=f"worker-{i}")
            stack.start("beat")
            time.sleep(3)  # beat and the workers' first tick are starting up: not our CPU
            # bin/worker stays in front of its worker processes (one per core by default).
            pids = [
                child
                for label, p in stack.processes.items()
                if label != "beat"
                for child in measure.children(p.pid)
            ]
            ((backend,),) = sql("SELECT pg_backend_pid()")
            components = {
                "worker": pids,
                "beat": [stack.processes["beat"].pid],
                "simulator": [probe.pid],
                "postgres": [measure.parent(backend)],  # the postmaster: all backends
                "redis": [REDIS_PID],
                "bench": [os.getpid()],
            }
            yield System(probe, stack, pids, components)
        finally:
            stack.stop()


def scenario_defaults(n: int, results: Results) -> None:
    """What a user gets: the service as the Procfile starts it, every setting at its default,
    against the bare client at its best, with 100, 500 or 1,000 requests in flight (the
    ceiling does not share the service's limits)."""
    reset_data(n)
    with running_system(defaults=True) as system:
        for latency, target in DEFAULT_TARGETS.items():
            pairs = []
            for _ in range(REPEATS[latency]):
                bare = max(
                    (ceiling(n, latency, system, in_flight=f) for f in (100, 500, 1000)),
                    key=lambda run: run.rate,
                )
                service = dispatch("defaults", n, latency, system)
                sql("TRUNCATE mailings_message, mailings_mailing CASCADE")
                results.runs += [bare, service]
                pairs.append((service.rate, bare.rate))
            service_rate = statistics.median(s for s, _ in pairs)
            bare_rate = statistics.median(b for _, b in pairs)
            label = (
                f"{n:,} messages, defaults ({len(system.workers)} worker processes),"
                f" simulator at {latency} ms"
            )
            results.add(
                Figure("defaults", f"{label}: service", service_rate, "msg/s", "", None),
                Figure("defaults", f"{label}: best bare client", bare_rate, "msg/s", "", None),
                ratio_to_ceiling(
                    "defaults",
                    f"{label}: ratio",
                    ratio=statistics.median(s / b for s, b in pairs),
                    service=service_rate,
                    ceiling=bare_rate,
                    target=target,
                ),
            )


def scenario_dispatch(n: int, results: Results, *, profile: bool = False) -> None:
    """The service as deployed here, one worker process per core (DISPATCH_WORKERS), against
    the bare client, the ceiling, with the same requests in flight in all (the workers share
    IN_FLIGHT), at each latency; where the machine is noisiest the two alternate and the
    medians count. One worker process alone is in the growth scenario."""
    reset_data(n)
    with running_system(workers=DISPATCH_WORKERS, in_flight=DISPATCH_IN_FLIGHT) as system:
        for latency, target in LATENCIES.items():
            pairs = []
            for repeat in range(REPEATS[latency]):
                bare = ceiling(n, latency, system)
                profiled = profile and latency == 0 and repeat == 0
                with profiling(system.workers[0], results) if profiled else nullcontext():
                    service = dispatch("dispatch", n, latency, system)
                sql("TRUNCATE mailings_message, mailings_mailing CASCADE")
                results.runs += [bare, service]
                pairs.append((service.rate, bare.rate))
            service_rate = statistics.median(s for s, _ in pairs)
            bare_rate = statistics.median(b for _, b in pairs)
            ratio = statistics.median(s / b for s, b in pairs)
            label = f"{n:,} messages, {DISPATCH_WORKERS} workers, simulator at {latency} ms"
            if len(pairs) > 1:
                label += f", median of {len(pairs)}"
            results.add(
                Figure("dispatch", f"{label}: service", service_rate, "msg/s", "", None),
                Figure("dispatch", f"{label}: ceiling", bare_rate, "msg/s", "", None),
                ratio_to_ceiling(
                    "dispatch",
                    f"{label}: ratio",
                    ratio=ratio,
                    service=service_rate,
                    ceiling=bare_rate,
                    target=target,
                ),
            )


@contextmanager
def profiling(pid: int, results: Results) -> Iterator[None]:
    """py-spy samples the worker while it sends; the report lists where its time goes."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
             "--gil", "--nonblocking", "--output", out.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                _, errors = spy.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, errors = spy.communicate()
        collapsed = Path(out.name).read_text()
        if not collapsed:
            # Attaching needs ptrace (root, or kernel.yama.ptrace_scope=0).
            print(f"py-spy recorded nothing: {errors.strip()[-500:]}", file=sys.stderr)
    results.profile = measure.profile_summary(collapsed)
    PROFILE.parent.mkdir(parents=True, exist_ok=True)
    PROFILE.write_text(collapsed)  # for a closer look


# -- 6. growth, and 5. memory -----------------------------------------------------------------


def scenario_growth(sizes: tuple[list[int], list[int], int], results: Results) -> None:
    """Dispatch at 0 ms latency (where the service is busiest) for growing numbers of
    messages at one worker, then with more worker processes (each with its own pool of
    IN_FLIGHT) at one size. Each run starts fresh workers, so their peak memory (VmHWM)
    covers exactly that run: the fan-out of all its messages and their dispatch."""
    counts, workers, at = sizes
    for n, w in [(n, 1) for n in counts] + [(at, w) for w in workers if w > 1]:
        reset_data(n)
        with running_system(workers=w) as system:
            run = dispatch("growth", n, 0, system)
        results.runs.append(run)
        results.add(
            Figure("growth", f"{n:,} messages, {w} worker(s)", run.rate, "msg/s", "", None),
            Figure(
                "growth", f"{n:,} messages, {w} worker(s): time", 1e6 / run.rate, "µs/msg", "", None
            ),
        )
    # Memory: the largest run at one worker, against the smallest.
    one = [r for r in results.runs if r.scenario == "growth" and r.workers == 1]
    small, large = min(one, key=lambda r: r.n), max(one, key=lambda r: r.n)
    peak, growth = max(large.peak_rss_mb), max(large.peak_rss_mb) / max(small.peak_rss_mb)
    results.add(
        Figure(
            "memory",
            f"peak RSS of the worker, fan-out and dispatch of {large.n:,}",
            peak,
            "MB",
            f"<= {MEMORY_TARGET_MB}",
            peak <= MEMORY_TARGET_MB,
        ),
        Figure(
            "memory",
            f"peak RSS at {large.n:,} / at {small.n:,} messages",
            growth,
            "x",
            "<= 1.2",
            growth <= 1.2,
        ),
    )


# -- 2. fan-out ------------------------------------------------------------------------------


def scenario_fanout(n: int, results: Results) -> None:
    """The service's fan-out against a raw INSERT ... SELECT of the same rows, alternated."""
    from notifier.mailings.models import Mailing
    from notifier.sending import queries

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
            timed(partial(queries.mailing_fan_out, mailing_id=mailings[1].id, now=now))
        )
        sql("TRUNCATE mailings_message")
    raw, service = statistics.median(raw_times), statistics.median(service_times)
    results.add(
        Figure("fanout", f"{n:,} messages: raw INSERT ... SELECT", raw, "s", "", None),
        Figure("fanout", f"{n:,} messages: service", service, "s", "", None),
        Figure("fanout", "ratio service / raw", service / raw, "x", "<= 1.5", service / raw <= 1.5),
    )


# -- 3. statistics at scale -----------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def scenario_stats(n: int, results: Results) -> None:
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
        results.add(
            Figure("stats", f"{name} p50", p50, "ms", "", None),
            Figure("stats", f"{name} p95", p95, "ms", f"<= {target}", p95 <= target),
        )


# -- 4. start precision ----------------------------------------------------------------------


def scenario_start(n: int, results: Results) -> None:
    """`n` mailings (to one client), starting 0.25 s apart: lag from each `start_at` to its
    request at the simulator."""
    from notifier.mailings.models import Message
    from notifier.sending.services import mailing_create

    reset_data(1)
    with running_system() as system:
        probe = system.probe
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
            # A mailing with no request by the deadline counts as infinitely late.
            earliest = min((first_request[i] for i in ids if i in first_request), default=None)
            lags.append(math.inf if earliest is None else earliest - start_at.timestamp())
    p50, p95 = percentile(lags, 0.5), percentile(lags, 0.95)
    results.add(
        Figure("start", f"{n} mailings: lag start_at -> first request, p50", p50, "s", "", None),
        Figure("start", f"{n} mailings: lag p95", p95, "s", "<= 1", p95 <= 1),
    )


# -- 7. the daily report ---------------------------------------------------------------------

REPORT_TARGET_S = 2.0
# Each mailing settles 80 messages a minute for 125 minutes (10,000 messages), its window
# placed somewhere in the day: 76 sent, 2 failed (two errors), 1 expired, 1 cancelled.
REPORT_MINUTES, REPORT_PER_MINUTE = 125, 80


def scenario_report(n: int, results: Results) -> None:
    """A day of `n` settled messages over `n / 10,000` mailings (1,000 at full size), in the
    rollups the report reads (written directly: what is timed is the report reading them,
    not the triggers that keep them); the whole report rendered, text and HTML, 7 times."""
    from notifier.reports import schedule, services
    from notifier.reports.settings import ReportSettings

    mailings = n // (REPORT_MINUTES * REPORT_PER_MINUTE)
    config = ReportSettings.load()
    day = datetime.now(UTC).date() - timedelta(days=1)
    since, _ = schedule.day_bounds(day, config.zone)
    stride = (24 * 60 - REPORT_MINUTES) / mailings  # minutes between mailings' starts
    reset_data(0)
    sql(
        "TRUNCATE mailings_messageminute, mailings_messagecount, mailings_messageerrorminute,"
        " sending_attemptminute"
    )
    sql(
        "INSERT INTO mailings_mailing (start_at, end_at, text, operator_codes, tags, created_at,"
        " updated_at, fanned_out_at, finished_at)"
        " SELECT s, s + %s * interval '1 minute', 'Mailing ' || g, '[]', '[]', s, s, s,"
        " s + %s * interval '1 minute'"
        " FROM generate_series(0, %s - 1) g,"
        " LATERAL (SELECT %s::timestamptz + floor(g * %s) * interval '1 minute' AS s) t",
        [REPORT_MINUTES, REPORT_MINUTES, mailings, since, stride],
    )
    rows = (
        "FROM mailings_mailing m CROSS JOIN generate_series(0, %s - 1) g"
        " CROSS JOIN (VALUES ('sent', '', 76), ('failed', 'HTTP 400: invalid phone number', 1),"
        " ('failed', 'HTTP 400: blocked', 1), ('expired', 'expired: no attempt fits before the"
        " end', 1), ('cancelled', '', 1)) AS o(status, error, n)"
    )
    minute = "date_trunc('minute', m.start_at) + g * interval '1 minute'"
    sql(
        "INSERT INTO mailings_messageminute (mailing_id, minute, status, number, base)"
        f" SELECT m.id, {minute}, o.status, sum(o.n), true {rows} GROUP BY 1, 2, 3",
        [REPORT_MINUTES],
    )
    sql(
        "INSERT INTO mailings_messageerrorminute (mailing_id, minute, status, error, number,"
        f" base) SELECT m.id, {minute}, o.status, o.error, o.n, true {rows}"
        " WHERE o.status IN ('failed', 'expired')",
        [REPORT_MINUTES],
    )
    sql(
        "INSERT INTO mailings_messagecount (mailing_id, status, number, base)"
        " SELECT mailing_id, status, sum(number), true FROM mailings_messageminute"
        " GROUP BY 1, 2"
    )
    # Every minute of the day, three outcomes in four latency buckets each.
    sql(
        "INSERT INTO sending_attemptminute (minute, outcome, bucket, number, base)"
        " SELECT %s::timestamptz + g * interval '1 minute', o, b, 100, true"
        " FROM generate_series(0, 1439) g, unnest(ARRAY['delivered', 'transient', 'permanent']) o,"
        " generate_series(4, 7) b",
        [since],
    )
    sql("ANALYZE")
    ((settled,),) = sql("SELECT sum(number) FROM mailings_messageminute")
    assert settled == mailings * REPORT_MINUTES * REPORT_PER_MINUTE, settled
    times = []
    for _ in range(7):
        started = time.perf_counter()
        email = services.report_render(day=day, config=config)
        times.append(time.perf_counter() - started)
    assert f"{76 * REPORT_MINUTES * mailings:,} sent" in email.subject, email.subject
    p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
    name = f"a day of {settled:,} messages, {mailings:,} mailings: render"
    results.add(
        Figure("report", f"{name} p50", p50, "s", "", None),
        Figure(
            "report", f"{name} p95", p95, "s", f"<= {REPORT_TARGET_S:g}", p95 <= REPORT_TARGET_S
        ),
    )


# -- report ----------------------------------------------------------------------------------


def database() -> str:
    from django.db import connection

    (pg_version,) = sql("SHOW server_version")[0]
    return f"PostgreSQL {pg_version} ({connection.vendor})"


def write_report(results: Results, folder: Path, *, database: str) -> Path:
    """benchmarks.md and its plots in `folder`; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = report.plots(results.runs, folder)
    performance = os.path.relpath(ROOT / "docs" / "performance.md", folder)
    lines = [
        "# Benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `make bench SIZE={results.size}` on"
        f" {os.cpu_count()} cores, {_memory()} memory, Python {platform.python_version()},"
        f" {database}, the simulator on loopback;"
        " everything shares the same cores. Dispatch runs one worker process per core"
        f" ({DISPATCH_WORKERS} x {DISPATCH_IN_FLIGHT} requests in flight; the ceiling"
        f" {IN_FLIGHT}); growth"
        f" gives each worker {IN_FLIGHT}. What the figures mean, and what is next:"
        f" [performance.md]({performance}).",
        "",
        *(
            [
                "A small run: the targets are meant for the full sizes (`make bench`), and small",
                "figures include start-up costs that a full run amortises.",
                "",
            ]
            if results.size == "small"
            else []
        ),
        "| scenario | figure | value | target | |",
        "|---|---|---|---|---|",
        *(
            f"| {f.scenario} | {f.name} | {shown(f)} {f.unit} | {f.target} | {verdict(f)} |"
            for f in results.figures
        ),
        "",
        *report.cpu_table(results.runs),
        *report.profile_table(results.profile, raw=os.path.relpath(PROFILE, ROOT)),
        *(f"![{title}]({path.name})" for title, path in plots),
        "",
    ]
    path = folder / "benchmarks.md"
    path.write_text("\n".join(lines))
    print(f"report: {path}")
    return path


def _memory() -> str:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return f"{pages / 2**30:.0f} GiB"


SCENARIOS: dict[str, Callable[..., None]] = {
    "defaults": scenario_defaults,
    "dispatch": scenario_dispatch,
    "fanout": scenario_fanout,
    "stats": scenario_stats,
    "start": scenario_start,
    "growth": scenario_growth,
    "report": scenario_report,
}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], help="default: all")
    parser.add_argument("--size", default="full", choices=list(SIZES))
    parser.add_argument(
        "--n", type=int, help="the size of the dispatch, fanout, stats, start or report run"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the worker at 0 ms")
    parser.add_argument(
        "--out",
        type=lambda folder: ROOT / folder,
        default=RESULTS,
        help="folder of the report and plots, from the repository (default: var/bench; the"
        " committed report: docs)",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as workdir:
        setup(Path(workdir))
        results = Results(args.size)
        for name in args.scenarios or SCENARIOS:
            size = SIZES[args.size][name] if name == "growth" or not args.n else args.n
            if name == "dispatch":
                scenario_dispatch(size, results, profile=args.profile)
            else:
                SCENARIOS[name](size, results)
        write_report(results, args.out, database=database())


if __name__ == "__main__":
    main()
