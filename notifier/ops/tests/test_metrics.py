import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from notifier.core.metrics import in_flight, record_attempt, record_final
from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MailingFactory, MessageFactory
from notifier.ops import metrics
from notifier.testing.stack import ROOT, session_database_url

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_exposition_is_prometheus_text_with_every_metric_and_type(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"]
    types = {f.name: f.type for f in text_string_to_metric_families(response.content.decode())}
    expected = {
        "notifier_send_attempts": "counter",
        "notifier_messages_final": "counter",
        "notifier_probe_latency_seconds": "histogram",
        "notifier_probe_requests_in_flight": "gauge",
        "notifier_messages_pending": "gauge",
        "notifier_messages": "gauge",
        "notifier_mailings": "gauge",
        "notifier_metrics_database_up": "gauge",
    }
    assert {name: types.get(name) for name in expected} == expected


def test_metrics_with_a_trailing_slash_answer_the_same(client):
    """`/metrics/` used to be Django's HTML 404 page."""
    response = client.get("/metrics/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "notifier_send_attempts" in response.content.decode()


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get(
        "/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0; charset=utf-8"
    )

    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name for f in parse_openmetrics(response.content.decode())}
    assert {"notifier_send_attempts", "notifier_messages_pending"} <= families


def test_engine_records_move_the_counters_and_the_histogram(client):
    before = scrape(client)

    record_attempt("transient", 0.2)
    record_attempt("delivered", 0.004)
    record_final("sent", 3)
    record_final("expired", 0)  # a sweep that expired nothing
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("notifier_send_attempts_total", outcome="transient") == 1
    assert delta("notifier_send_attempts_total", outcome="delivered") == 1
    assert delta("notifier_send_attempts_total", outcome="permanent") == 0
    assert delta("notifier_messages_final_total", status="sent") == 3
    assert delta("notifier_messages_final_total", status="expired") == 0
    assert delta("notifier_probe_latency_seconds_count") == 2
    assert delta("notifier_probe_latency_seconds_sum") == pytest.approx(0.204)
    assert delta("notifier_probe_latency_seconds_bucket", le="0.001") == 0
    assert delta("notifier_probe_latency_seconds_bucket", le="0.005") == 1
    assert delta("notifier_probe_latency_seconds_bucket", le="0.1") == 1
    assert delta("notifier_probe_latency_seconds_bucket", le="0.25") == 2


def test_unknown_outcome_or_status_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown outcome"):
        record_attempt("maybe", 0.1)
    with pytest.raises(ValueError, match="unknown status"):
        record_final("pending")


def test_database_gauges_count_queue_messages_and_mailings(client):
    now = timezone.now()
    open_window = {"start_at": now - timedelta(minutes=1), "end_at": now + timedelta(hours=1)}
    MailingFactory()  # scheduled: starts in an hour
    running = MailingFactory(**open_window, fanned_out_at=now)
    over = MailingFactory(start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1))
    MailingFactory(**open_window, fanned_out_at=now, finished_at=now)  # all sent before the end
    cancelled = MailingFactory(**open_window, fanned_out_at=now, cancelled_at=now)
    pending = Message.Status.PENDING
    MessageFactory.create_batch(
        2, mailing=running, status=pending, next_attempt_at=now - timedelta(seconds=1)
    )
    MessageFactory(mailing=running, status=pending, next_attempt_at=now + timedelta(minutes=1))
    MessageFactory(mailing=running, status=Message.Status.SENDING)
    MessageFactory(mailing=running, status=Message.Status.SENT, sent_at=now)
    # Pending, but never to be sent: not in the queue.
    MessageFactory(mailing=running, client=None, phone="79990000000", status=pending)
    MessageFactory(mailing=cancelled, status=pending)
    MessageFactory(mailing=over, status=pending)
    MessageFactory(mailing=over, status=Message.Status.EXPIRED)

    samples = scrape(client)

    assert value(samples, "notifier_metrics_database_up") == 1
    assert value(samples, "notifier_messages_pending", due="now") == 2
    assert value(samples, "notifier_messages_pending", due="later") == 1
    assert {
        status: value(samples, "notifier_messages", status=status)
        for status in Message.Status.values
    } == {"pending": 6, "sending": 1, "sent": 1, "failed": 0, "expired": 1, "cancelled": 0}
    assert {
        status: value(samples, "notifier_mailings", status=status)
        for status in Mailing.Status.values
    } == {"scheduled": 1, "running": 1, "finished": 2, "cancelled": 1}


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite has no statement timeout (nor row locks)"
)
def test_a_scrape_does_not_wait_for_a_locked_table(client, monkeypatch):
    """A migration holding a table lock (or a database that is simply slow) costs a scrape
    the statement timeout, not a hang; the engine's metrics are still served."""
    monkeypatch.setattr(metrics, "DB_TIMEOUT", 0.2)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {Mailing._meta.db_table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(5)
        started = time.monotonic()
        samples = scrape(client)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join()

    assert elapsed < 1
    assert value(samples, "notifier_metrics_database_up") == 0
    assert ("notifier_mailings", (("status", "running"),)) not in samples
    assert ("notifier_send_attempts_total", (("outcome", "delivered"),)) in samples


def test_bearer_token_guards_metrics_when_configured(client, settings):
    settings.METRICS_TOKEN = "scrape-s3cret"

    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "not_authenticated"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-s3cret").status_code == 200


# -- several processes -------------------------------------------------------------------------

WORKER = """
import sys
import django

django.setup()
from notifier.core.metrics import in_flight, record_attempt

record_attempt("delivered", 0.02)
in_flight.inc(3)
print("recorded", flush=True)
sys.stdin.readline()  # hold the requests "in flight" until told to exit
"""


@pytest.mark.skipif(not metrics.MULTIPROC_DIR, reason="PROMETHEUS_MULTIPROC_DIR is empty")
def test_metrics_of_every_process_add_up(client):
    """What a worker process records shows in the web process's /metrics, added to the web's
    own; its requests in flight count while it lives and vanish when it exits."""
    before = scrape(client)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        cwd=ROOT,
        env=os.environ,  # the same folder, exported by notifier.core.metrics
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdin is not None
        assert worker.stdout.readline() == b"recorded\n"
        record_attempt("delivered", 0.01)
        in_flight.inc()
        during = scrape(client)
        in_flight.dec()
        worker.stdin.write(b"exit\n")
        worker.stdin.close()
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
    after = scrape(client)

    attempts = ("notifier_send_attempts_total", (("outcome", "delivered"),))
    flying = ("notifier_probe_requests_in_flight", ())
    latency = ("notifier_probe_latency_seconds_sum", ())
    assert during[attempts] - before[attempts] == 2
    assert during[latency] - before[latency] == pytest.approx(0.03)
    assert during[flying] - before[flying] == 4
    # Counters keep what an exited process counted; its gauge share goes with it.
    assert after[attempts] - before[attempts] == 2
    assert after[flying] == before[flying]


WEB_ALONE = """
import sys
import django

django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
from notifier.core.metrics import record_attempt

setup_test_environment()
record_attempt("permanent", 0.5)
with open(sys.argv[1], "wb") as out:
    out.write(Client().get("/metrics").content)
"""


def test_without_a_folder_metrics_are_those_of_the_answering_process(tmp_path: Path):
    record_attempt("delivered", 0.01)  # in this process: not seen by the other one
    output = tmp_path / "metrics.txt"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": "",
        "DATABASE_URL": session_database_url(),
    }

    subprocess.run(
        [sys.executable, "-c", WEB_ALONE, str(output)], cwd=ROOT, env=env, check=True, timeout=60
    )

    samples = parse(output.read_text())
    assert value(samples, "notifier_send_attempts_total", outcome="permanent") == 1
    assert value(samples, "notifier_send_attempts_total", outcome="delivered") == 0
    assert value(samples, "notifier_metrics_database_up") == 1
    # The process's own metrics come with the default registry.
    assert any(name == "python_info" for name, _ in samples)
