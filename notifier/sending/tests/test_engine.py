"""The engine end to end, with real processes: a Celery worker and beat started through the
Procfile's entry scripts, Redis (PostgreSQL runs) or the file broker (SQLite runs), the test
database, and the simulator of the external API as the witness of what was really sent."""

import os
import re
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifier.clients.models import Client
from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message
from notifier.sending.services import mailing_create
from notifier.testing.stack import PostgresServer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def make_clients(n: int, **kwargs) -> list[Client]:
    return ClientFactory.create_batch(n, **kwargs)


def create_mailing(*, start_in: float = 0, lasts: float = 120, **kwargs) -> Mailing:
    now = timezone.now()
    return mailing_create(
        start_at=now + timedelta(seconds=start_in),
        end_at=now + timedelta(seconds=start_in + lasts),
        text=kwargs.pop("text", "Hello!"),
        **kwargs,
    )


def statuses(mailing: Mailing) -> Counter:
    return Counter(Message.objects.filter(mailing=mailing).values_list("status", flat=True))


def finished(mailing: Mailing) -> bool:
    mailing.refresh_from_db()
    return mailing.finished_at is not None


def run(stack) -> None:
    stack.start("worker")
    stack.start("beat")


def test_each_matching_client_gets_exactly_one_message(stack, probe, api):
    """Several filters at once: exactly the matching clients get exactly one message each,
    with their phone and the mailing's text, and the statistics agree with the witness."""
    a916 = make_clients(30, operator_code="916", tag="a")
    b916 = make_clients(30, operator_code="916", tag="b")
    a926 = make_clients(30, operator_code="926", tag="a")
    make_clients(10, operator_code="999", tag="c")
    run(stack)
    before = metric_values(api)

    by_code = create_mailing(text="by code", operator_codes=["916"])
    by_tag = create_mailing(text="by tag", tags=["a"])
    both = create_mailing(text="both", operator_codes=["926"], tags=["a", "b"])
    mailings = [by_code, by_tag, both]
    for mailing in mailings:
        wait_for(lambda m=mailing: finished(m), timeout=60, what=f"mailing {mailing.id}")

    expected = {
        by_code.id: {c.phone for c in a916 + b916},
        by_tag.id: {c.phone for c in a916 + a926},
        both.id: {c.phone for c in a926},
    }
    messages = {m.id: m for m in Message.objects.all()}
    received: dict[int, list[str]] = {m.id: [] for m in mailings}
    for delivery in probe.deliveries():
        message = messages[delivery["id"]]
        assert delivery["text"] == message.mailing.text
        assert str(delivery["phone"]) == message.phone
        received[message.mailing_id].append(message.phone)
    for mailing in mailings:
        assert sorted(received[mailing.id]) == sorted(expected[mailing.id])
        stats = api.get(f"/api/mailings/{mailing.id}/stats/").json()
        assert stats["status"] == "finished"
        assert stats["messages"]["total"] == len(expected[mailing.id])
        assert stats["messages"]["by_status"]["sent"] == len(expected[mailing.id])
    report = probe.report()
    assert report["duplicates"] == {}
    assert report["deliveries"] == sum(len(v) for v in expected.values())
    assert all(m.sent_at is not None and m.attempts == 1 for m in messages.values())
    # The worker's metrics reach /metrics of the web process.
    after = metric_values(api)
    delivered = 'notifier_send_attempts_total{outcome="delivered"}'
    sent = 'notifier_messages_final_total{status="sent"}'
    assert after[delivered] - before.get(delivered, 0) == report["deliveries"]
    assert after[sent] - before.get(sent, 0) == report["deliveries"]


def metric_values(api) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families(api.get("/metrics").content.decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_a_future_mailing_starts_by_itself_and_not_before(stack, probe):
    make_clients(20)
    run(stack)

    mailing = create_mailing(start_in=4)
    wait_for(lambda: finished(mailing), timeout=60, what="the mailing to finish")

    times = [r["time"] for r in probe.requests()]
    assert len(times) == 20
    start = mailing.start_at.timestamp()
    assert min(times) >= start
    # The start is timed by the engine, not found by the next tick or later.
    assert min(times) - start < 2.0


def test_a_mailing_survives_every_process_restarting_before_its_start(stack, probe):
    """Nothing in memory carries a future start: the database does."""
    make_clients(5)
    run(stack)
    mailing = create_mailing(start_in=6)
    stack.stop()
    time.sleep(1)
    run(stack)

    wait_for(lambda: finished(mailing), timeout=60, what="the mailing to finish")
    assert statuses(mailing) == {"sent": 5}
    assert min(r["time"] for r in probe.requests()) >= mailing.start_at.timestamp()


def test_faults_lose_nothing_and_deliver_nothing_twice(stack, probe):
    """30% 5xx, 10% garbage, dropped connections and a 20-second outage: every message still
    ends `sent` before the end. The witness saw each exactly once, except requests that had
    arrived when the outage cut their connection before the answer: only those, and only at
    that moment, may have arrived twice."""
    make_clients(150)
    probe.set_faults(error_rate=0.3, garbage_rate=0.1, drop_rate=0.05, latency_ms=20)
    run(stack)

    mailing = create_mailing(lasts=120)
    wait_for(lambda: statuses(mailing)["sent"] >= 30, timeout=30, what="some messages sent")
    outage_starts = time.time()
    probe.outage(20)
    outage_ends = time.time() + 20
    wait_for(lambda: finished(mailing), timeout=100, what="the mailing to finish")

    assert statuses(mailing) == {"sent": 150}
    assert Message.objects.filter(sent_at__gte=mailing.end_at).count() == 0
    report = probe.report()
    assert report["delivered"] == 150
    first_delivery = {d["id"]: min(d["times"]) for d in probe.deliveries()}
    for message_id, count in report["duplicates"].items():
        assert count == 2
        assert outage_starts - 1 < first_delivery[int(message_id)] < outage_starts + 1
    assert report["by_answer"].get("garbage", 0) > 0
    assert report["by_answer"].get("dropped", 0) > 0
    assert max(Message.objects.values_list("attempts", flat=True)) > 1
    assert report["last_delivery_at"] > outage_ends  # some waited out the outage


def test_nothing_reaches_the_api_after_the_end_and_the_rest_expire(stack, probe):
    """A slow API and more messages than the window allows: no request arrives at or after
    `end_at`; what was not sent by then is `expired`."""
    make_clients(200)
    probe.set_faults(latency_ms=400)
    stack.configure(SENDING_IN_FLIGHT="5")
    run(stack)

    mailing = create_mailing(lasts=4)
    wait_for(lambda: finished(mailing), timeout=60, what="the mailing to finish")

    end = mailing.end_at.timestamp()
    assert max(r["time"] for r in probe.requests()) < end
    counts = statuses(mailing)
    assert counts["sent"] > 0
    assert counts["expired"] > 0
    assert counts["sent"] + counts["expired"] == 200
    # The API may have taken a message whose answer came too late: the request's timeout is
    # capped at the time left, so it timed out, and the message is expired, not sent.
    messages = Message.objects.in_bulk([d["id"] for d in probe.deliveries()])
    assert {m.status for m in messages.values()} <= {"sent", "expired"}
    for message in messages.values():
        if message.status == "expired":
            assert "last error: timeout" in message.last_error


def test_a_shorter_end_takes_effect_at_once(stack, probe, api):
    make_clients(200)
    probe.set_faults(latency_ms=200)
    stack.configure(SENDING_IN_FLIGHT="5")
    run(stack)
    mailing = create_mailing(lasts=120)
    wait_for(lambda: statuses(mailing)["sent"] >= 5, timeout=30, what="sending under way")

    new_end = timezone.now() + timedelta(seconds=1)
    response = api.patch(
        f"/api/mailings/{mailing.id}/", {"end_at": new_end.isoformat()}, format="json"
    )
    assert response.status_code == 200
    wait_for(lambda: finished(mailing), timeout=30, what="the mailing to finish")

    assert max(r["time"] for r in probe.requests()) < new_end.timestamp()
    assert statuses(mailing)["expired"] > 0


def test_a_killed_worker_loses_nothing(stack, probe):
    """SIGKILL mid-mailing, then a new worker: every message ends `sent`. The only repeats
    the witness may see are requests that had arrived before the kill (their outcome died
    with the worker) and, with the message id reused, a receiver can tell them apart."""
    make_clients(300)
    probe.set_faults(latency_ms=50)
    run(stack)
    mailing = create_mailing(lasts=120)
    wait_for(lambda: statuses(mailing)["sent"] >= 60, timeout=30, what="sending under way")

    stack.kill("worker", signal.SIGKILL)
    killed_at = time.time()
    orphaned = set(Message.objects.filter(status="sending").values_list("id", flat=True))
    stack.start("worker")
    wait_for(lambda: finished(mailing), timeout=60, what="the mailing to finish")

    assert statuses(mailing) == {"sent": 300}
    report = probe.report()
    assert report["delivered"] == 300
    first_delivery = {d["id"]: min(d["times"]) for d in probe.deliveries()}
    repeated = {int(message_id) for message_id in report["duplicates"]}
    assert repeated <= orphaned
    assert all(first_delivery[message_id] < killed_at for message_id in repeated)
    assert all(count == 2 for count in report["duplicates"].values())


def test_one_wake_up_starts_every_workers_send_loop(stack, probe, redis):
    """Without beat there is no tick to wake a second worker later: the one wake-up that
    follows the fan-out must reach both, and both must send."""
    if redis is None:
        pytest.skip("the file broker wakes one worker; it has no fan-out exchange")  # SQLite
    make_clients(200)
    probe.set_faults(latency_ms=100)
    stack.configure(SENDING_IN_FLIGHT="5")  # 200 messages take both workers seconds
    stack.start("worker", label="first")
    stack.start("worker", label="second")
    mailing = create_mailing(lasts=120)

    wait_for(lambda: statuses(mailing) == {"sent": 200}, timeout=60, what="every message sent")
    logs = {label: stack.log_text(label) for label in ("first", "second")}
    assert all("send attempt" in text for text in logs.values()), "a worker sent nothing"
    assert probe.report()["duplicates"] == {}


def test_a_restarted_broker_loses_nothing(stack, probe, redis):
    if redis is None:
        pytest.skip("the file broker has no server to restart")  # SQLite runs
    make_clients(300)
    probe.set_faults(latency_ms=50)
    run(stack)
    mailing = create_mailing(lasts=120)
    wait_for(lambda: statuses(mailing)["sent"] >= 60, timeout=30, what="sending under way")

    redis.stop()
    time.sleep(2)
    redis.start()
    wait_for(lambda: finished(mailing), timeout=60, what="the mailing to finish")

    assert statuses(mailing) == {"sent": 300}
    assert probe.report()["duplicates"] == {}
    # The wake-ups work again after the restart: a new mailing starts at once.
    late = create_mailing(text="after the restart")
    wait_for(lambda: finished(late), timeout=30, what="a mailing after the restart")
    assert statuses(late) == {"sent": 300}


def test_refused_credentials_pause_sending_and_a_400_fails_only_its_message(stack, probe):
    """While the API answers 401, nothing is failed for it and sending pauses (a trickle of
    probes, not a storm); it resumes by itself. A 400 fails only that message."""
    make_clients(40)
    probe.set_faults(unauthorized=True)
    run(stack)
    mailing = create_mailing(lasts=120)
    wait_for(lambda: probe.report()["requests"] > 0, timeout=30, what="a first attempt")
    rejected = Message.objects.filter(mailing=mailing).order_by("id").first()
    assert rejected is not None
    probe.set_faults(reject_ids=[rejected.id])
    time.sleep(1)  # the first claim's requests all meet the 401
    before = probe.report()["requests"]
    time.sleep(3)

    assert statuses(mailing)["failed"] == 0
    assert probe.report()["requests"] - before <= 5  # a paced probe, not a retry storm

    probe.set_faults(unauthorized=False)
    wait_for(lambda: finished(mailing), timeout=60, what="the mailing to finish")

    assert statuses(mailing) == {"sent": 39, "failed": 1}
    rejected.refresh_from_db()
    assert (rejected.status, rejected.last_error) == ("failed", "HTTP 400")
    assert "refused our credentials" in stack.log_text()


def test_a_deleted_clients_unsent_messages_are_never_sent(stack, probe, api):
    clients = make_clients(100)
    probe.set_faults(latency_ms=100)
    stack.configure(SENDING_IN_FLIGHT="5")
    run(stack)
    mailing = create_mailing(lasts=120)
    wait_for(lambda: statuses(mailing)["sent"] >= 5, timeout=30, what="sending under way")

    last = clients[-1]
    assert api.delete(f"/api/clients/{last.id}/").status_code == 204
    wait_for(lambda: finished(mailing), timeout=60, what="the mailing to finish")

    assert last.phone not in {str(d["phone"]) for d in probe.deliveries()}
    assert statuses(mailing) == {"sent": 99, "cancelled": 1}


def test_the_api_answers_while_the_external_api_hangs_and_the_broker_is_down(
    stack, probe, api, redis
):
    make_clients(50)
    probe.set_faults(hang=True, hang_seconds=30)
    run(stack)
    hung = create_mailing(lasts=120)
    wait_for(lambda: probe.report()["requests"] > 0, timeout=30, what="requests to hang")

    started = time.monotonic()
    assert api.get("/api/mailings/stats/").status_code == 200
    created = api.post(
        "/api/mailings/",
        {
            "start_at": timezone.now().isoformat(),
            "end_at": (timezone.now() + timedelta(minutes=2)).isoformat(),
            "text": "while hanging",
            "filter": {},
        },
        format="json",
    )
    assert created.status_code == 201
    assert time.monotonic() - started < 2  # not bound to the API's 2-second timeouts

    if redis is not None:
        redis.stop()
        started = time.monotonic()
        created = api.post(
            "/api/mailings/",
            {
                "start_at": timezone.now().isoformat(),
                "end_at": (timezone.now() + timedelta(minutes=2)).isoformat(),
                "text": "without a broker",
                "filter": {},
            },
            format="json",
        )
        assert created.status_code == 201
        assert time.monotonic() - started < 2
        redis.start()

    probe.set_faults(hang=False)
    wait_for(lambda: finished(hung), timeout=60, what="the hung mailing to finish")
    for mailing in Mailing.objects.all():
        wait_for(lambda m=mailing: finished(m), timeout=60, what=f"mailing {mailing.id}")
        assert statuses(mailing) == {"sent": 50}


def database_statuses(mailing: Mailing) -> Counter:
    """`statuses`, through a fresh connection if the server restarted under the old one."""
    try:
        return statuses(mailing)
    except Exception:
        connection.close()
        return statuses(mailing)


@pytest.mark.parametrize("outage", ["restart", "30 s stopped"])
def test_a_database_outage_loses_nothing_and_sends_nothing_twice(stack, probe, outage):
    """The send loop outlives its database: claims stop, requests in flight finish, their
    outcomes are held and written once the database answers, and no lease that ran out
    meanwhile makes a delivered message go out again."""
    if not PostgresServer.available():
        pytest.skip("needs the PostgreSQL cluster of scripts/with-postgres")  # the SQLite leg
    server = PostgresServer()
    count = 3000
    make_clients(count)
    probe.set_faults(latency_ms=100)
    stack.configure(SENDING_IN_FLIGHT="50")
    run(stack)
    mailing = create_mailing(lasts=240)
    wait_for(lambda: statuses(mailing)["sent"] >= 300, timeout=30, what="sending under way")

    if outage == "restart":
        server.restart()
    else:
        stopping_at = time.time()
        server.stop()
        time.sleep(30)
        # Requests were under way as the database went: their outcomes had to be held.
        assert any(r["time"] > stopping_at for r in probe.requests())
        server.start()
    wait_for(
        lambda: database_statuses(mailing).get("sent") == count,
        timeout=90,
        what="every message sent",
    )

    report = probe.report()
    assert report["delivered"] == count
    assert report["duplicates"] == {}
    assert "database unavailable" in stack.log_text("worker")


def test_one_worker_command_runs_a_send_loop_per_process_and_stops_them_all(stack, probe):
    """bin/worker, as the Procfile starts it, runs WORKER_PROCESSES worker processes; a stop
    signal to it reaches them all, and it exits when they have."""
    stack.configure(WORKER_PROCESSES="2")
    stack.start("worker")
    log = stack.logs[-1]
    wait_for(lambda: log.read_text().count(" ready.") == 2, timeout=30, what="two processes")
    names = re.findall(r"(worker-\d+-\d)@\S+ ready\.", log.read_text())
    assert len(set(names)) == 2
    supervisor = stack.processes["worker"]
    children = [
        int(pid)
        for pid in Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children")
        .read_text()
        .split()
    ]
    assert len(children) == 2

    os.kill(supervisor.pid, signal.SIGTERM)  # the process alone, as a process manager does
    supervisor.wait(timeout=30)
    stack.processes.pop("worker")

    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
