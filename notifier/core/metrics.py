"""Prometheus metrics: the instruments, recorded where the event happens (mostly the engine),
from any layer; /metrics (`notifier.ops.metrics`) adds them up with what the database says
at the moment of the scrape.

Recorded by the engine, in the worker processes (the functions and gauge below):

- `notifier_send_attempts_total{outcome}` (counter): requests to the external API, by typed
  outcome: delivered, transient, permanent, unauthorized.
- `notifier_probe_latency_seconds` (histogram): their duration, buckets from 1 ms to 30 s.
- `notifier_probe_requests_in_flight` (gauge): requests under way now, over all workers, as each
  send loop last set it (at each pass of its feeder and each write of outcomes).
- `notifier_messages_final_total{status}` (counter): messages that reached a final status:
  sent, failed, expired, cancelled.
- `notifier_sending_in_flight_limit` (gauge): the in-flight limits the send loops found (see
  `sending.limits.ConcurrencyLimit`), summed over the workers.
- `notifier_throttled_total{status}` (counter): 429 and 503 answers, the provider's push-back.

Recorded by the reports process:

- `notifier_reports_total{status}` (counter): daily reports sent, failed (every attempt) and
  skipped (fell due too long ago, or with no recipients).

Read from the database at each scrape (one GROUP BY each, bounded by a statement timeout on
PostgreSQL; see `notifier.ops.selectors`):

- `notifier_messages_pending{due}` (gauge): the queue, pending messages of live mailings,
  due `now` or `later` (waiting out a backoff).
- `notifier_messages{status}` (gauge): every message, by status.
- `notifier_mailings{status}` (gauge): every mailing, by the status the API shows.
- `notifier_metrics_database_up` (gauge): 0 when those could not be read for this scrape.

Several processes. The engine records in worker processes, and /metrics is answered by
whichever web process gets the request, so by default (`PROMETHEUS_MULTIPROC_DIR` set; its
default is `VAR_DIR/metrics`) prometheus-client runs in multiprocess mode: every process writes
its values to files of its own in that folder, and /metrics adds up the files of all of them,
including processes that have exited, so that counters never go backwards when a worker
restarts. What that asks of a deployment:

- The folder is local and shared by the web, the workers and beat, which therefore run on one
  host (a worker on another host writes to a folder nobody reads: run a web process beside it
  and scrape that one too).
- Empty it before starting the processes together (`make run` does), never while one of them
  runs: a process whose files were removed goes on writing to them unseen.
- A process that exits normally takes its in-flight count with it; one killed with SIGKILL
  leaves its last count in the gauge until the folder is next emptied.

`PROMETHEUS_MULTIPROC_DIR` empty: each process keeps its metrics in memory, and /metrics shows
only the web process that answers (the engine's counters stay at zero there; the database
gauges are complete), plus its `process_*` and `python_*` metrics.

prometheus-client chooses its storage once, when first imported, from the environment alone:
this module exports the setting before importing it, and Django imports this module when the
app registry is ready (`CoreConfig.ready`), before any engine code runs.
"""

import atexit
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MULTIPROC_DIR: str = settings.PROMETHEUS_MULTIPROC_DIR
if MULTIPROC_DIR:
    Path(MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = MULTIPROC_DIR
else:
    # Present but empty would still mean multiprocess mode, with files in the current folder.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from prometheus_client import (  # noqa: E402 - only once the environment says which storage
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)

if bool(MULTIPROC_DIR) == (values.ValueClass is values.MutexValue):
    raise ImproperlyConfigured(
        "prometheus_client was imported before notifier.core.metrics could set its storage "
        f"(PROMETHEUS_MULTIPROC_DIR={MULTIPROC_DIR!r}): import this module first"
    )

OUTCOMES = ("delivered", "transient", "permanent", "unauthorized")
FINAL_STATUSES = ("sent", "failed", "expired", "cancelled")
REPORT_STATUSES = ("sent", "failed", "skipped")
# From a fast answer on a local network to the longest request timeout worth configuring.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

send_attempts = Counter(
    "notifier_send_attempts_total",
    "Requests to the external sending API, by outcome.",
    ["outcome"],
)
probe_latency = Histogram(
    "notifier_probe_latency_seconds",
    "Duration of requests to the external sending API, answered or not.",
    buckets=LATENCY_BUCKETS,
)
messages_final = Counter(
    "notifier_messages_final_total",
    "Messages that reached a final status.",
    ["status"],
)
reports = Counter(
    "notifier_reports_total",
    "Daily reports by outcome: sent, failed (every attempt), skipped.",
    ["status"],
)
in_flight = Gauge(
    "notifier_probe_requests_in_flight",
    "Requests to the external sending API under way, over all worker processes.",
    multiprocess_mode="livesum",
)

in_flight_limit = Gauge(
    "notifier_sending_in_flight_limit",
    "The in-flight limits the send loops found (adaptive concurrency), over all workers.",
    multiprocess_mode="livesum",
)
throttled = Counter(
    "notifier_throttled_total",
    "Answers of the external API asking us to slow down (429, 503) or to wait (Retry-After).",
    ["status"],
)

# Every label value exists from the start: a rate over a series that appears late is wrong.
_attempts = {outcome: send_attempts.labels(outcome=outcome) for outcome in OUTCOMES}
_finals = {status: messages_final.labels(status=status) for status in FINAL_STATUSES}
_reports = {status: reports.labels(status=status) for status in REPORT_STATUSES}


def record_attempt(outcome: str, latency: float) -> None:
    """Count one request to the external API that ended with `outcome` (one of `OUTCOMES`)
    after `latency` seconds."""
    try:
        counter = _attempts[outcome]
    except KeyError:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}") from None
    counter.inc()
    probe_latency.observe(latency)


def record_final(status: str, count: int = 1) -> None:
    """Count `count` messages that reached the final `status` (one of `FINAL_STATUSES`)."""
    try:
        counter = _finals[status]
    except KeyError:
        raise ValueError(f"unknown status {status!r}; expected one of {FINAL_STATUSES}") from None
    if count:
        counter.inc(count)


def record_report(status: str) -> None:
    """Count a daily report that was sent, failed or skipped (`REPORT_STATUSES`)."""
    try:
        counter = _reports[status]
    except KeyError:
        raise ValueError(f"unknown status {status!r}; expected one of {REPORT_STATUSES}") from None
    counter.inc()


def register_process_exit() -> None:
    """On a normal exit, drop this process's share of the live gauges (in flight)."""
    if MULTIPROC_DIR:
        # The pid at exit, not now: a forked child must not remove its parent's files.
        atexit.register(lambda: multiprocess.mark_process_dead(os.getpid(), MULTIPROC_DIR))
