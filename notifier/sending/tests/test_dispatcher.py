"""The send loop in-process against the simulator on loopback and the test database.

The dispatcher does its database work on a thread of its own, with its own connection, so
these tests commit for real (`transaction=True`); on SQLite the test database is a file
(config/settings_test.py), which that connection can see.
"""

import itertools
import threading
import time
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from django.db import OperationalError
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MailingFactory
from notifier.mailings.windows import SendWindow
from notifier.sending import dispatcher, queries, tick
from notifier.sending.dispatcher import CredentialsGate, Dispatcher
from notifier.sending.models import SendLoop
from notifier.sending.settings import EngineSettings
from probe_sim.testing import ProbeProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

S = Message.Status
SEC = timedelta(seconds=1)
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def credentials_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credentials gate lives as long as the process; each test starts with it open."""
    monkeypatch.setattr(dispatcher, "credentials", CredentialsGate())
    monkeypatch.setattr(dispatcher, "_admission", None)  # and with no limit learnt yet


def config(probe: ProbeProcess, **overrides: Any) -> EngineSettings:
    """Small timeouts and delays, so that every test runs in a second or two."""
    knobs: dict[str, Any] = {
        "probe_url": probe.url,
        "probe_token": probe.token,
        "request_timeout": 2.0,
        "in_flight": 20,
        "rate_limit": 0.0,
        "broker_url": "filesystem://localhost/",
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "start_window": 0.5,
        "end_margin": 0.05,
        "min_timeout": 0.1,
        "lease_margin": 1.0,
        "auth_pause": 0.3,
        "dispatch_budget": 5.0,
        "shutdown_timeout": 2.0,
        **overrides,
    }
    return EngineSettings(**knobs)


def started_mailing(clients: int, *, text: str = "Hello!", **kwargs: Any) -> Mailing:
    """A mailing whose window is open, fanned out to `clients` new clients."""
    ClientFactory.create_batch(clients)
    now = timezone.now()
    fields = {"start_at": now - SEC, "end_at": now + HOUR, "text": text, **kwargs}
    mailing = cast(Mailing, MailingFactory(**fields))
    assert queries.mailing_fan_out(mailing_id=mailing.id, now=now) == queries.FanOut(clients, 0)
    return mailing


def messages(mailing: Mailing) -> list[Message]:
    return list(Message.objects.filter(mailing=mailing))


def test_every_message_of_a_mailing_is_sent_once(probe):
    mailing = started_mailing(50, text="Spring sale: -20% today")
    started = timezone.now()

    more = Dispatcher(config(probe)).run(budget=10)

    assert more is False
    # It told the console how it went: one loop, its limit found.
    (loop,) = SendLoop.objects.all()
    assert loop.in_flight_limit >= 20
    rows = messages(mailing)
    for m in rows:
        assert (m.status, m.attempts, m.lease_until) == (S.SENT, 1, None)
        assert m.sent_at is not None
        assert started <= m.sent_at <= timezone.now()
    # The simulator's witness: each message arrived once, with its phone and the text.
    deliveries = probe.deliveries()
    assert sorted((d["id"], d["phone"], d["text"]) for d in deliveries) == sorted(
        (m.id, int(m.phone), "Spring sale: -20% today") for m in rows
    )
    assert all(len(d["times"]) == 1 for d in deliveries)
    report = probe.report()
    assert (report["requests"], report["duplicates"]) == (50, {})


def test_a_slow_api_does_not_make_a_slow_mailing(probe):
    """Requests overlap up to the in-flight limit: 60 answers of 300 ms each take about
    0.6 s in all (two waves of 30), not 18 s."""
    probe.set_faults(latency_ms=300)
    mailing = started_mailing(60)

    Dispatcher(config(probe, in_flight=30)).run(budget=10)

    assert {m.status for m in messages(mailing)} == {S.SENT}
    report = probe.report()
    assert report["delivered"] == 60
    assert report["last_request_at"] - report["first_request_at"] < 1.0


def test_transient_errors_are_retried_until_everything_is_sent(probe):
    """Half the requests fail with 5xx; with tiny backoffs every message still ends sent,
    some after several attempts, and each attempt was one request."""
    probe.set_faults(error_rate=0.5)
    mailing = started_mailing(30)

    Dispatcher(config(probe, in_flight=10)).run(budget=8)

    rows = messages(mailing)
    assert {m.status for m in rows} == {S.SENT}
    assert max(m.attempts for m in rows) > 1
    report = probe.report()
    assert report["requests"] == sum(m.attempts for m in rows)
    assert (report["delivered"], report["duplicates"]) == (30, {})
    assert report["by_answer"].keys() >= {"200"}
    assert set(report["by_answer"]) - {"200"} <= {"500", "502", "503"}


def test_a_rejected_message_fails_alone(probe):
    mailing = started_mailing(10)
    rejected = messages(mailing)[0]
    probe.set_faults(reject_ids=[rejected.id])

    Dispatcher(config(probe)).run(budget=5)

    rejected.refresh_from_db()
    assert (rejected.status, rejected.attempts, rejected.sent_at) == (S.FAILED, 1, None)
    assert rejected.last_error.startswith("HTTP 400")
    assert {m.status for m in messages(mailing) if m.id != rejected.id} == {S.SENT}
    assert probe.report()["requests"] == 10  # a permanent failure is not retried


def test_unauthorized_pauses_sending_and_resumes_without_failing_anything(probe):
    """While our credentials are refused, the loop pauses and then probes one request at a
    time instead of trying every message; once they work again, everything goes out."""
    in_flight, count = 5, 30
    probe.set_faults(unauthorized=True)
    mailing = started_mailing(count)
    credentials_fixed = threading.Timer(0.8, probe.set_faults, kwargs={"unauthorized": False})

    credentials_fixed.start()
    try:
        Dispatcher(config(probe, in_flight=in_flight, auth_pause=0.3, backoff_max=0.6)).run(
            budget=8
        )
    finally:
        credentials_fixed.cancel()

    rows = messages(mailing)
    assert not [m for m in rows if m.status == S.FAILED]
    assert {m.status for m in rows} == {S.SENT}
    refused = [r["time"] for r in probe.requests() if r["answer"] == "401"]
    # One batch was in flight when the first 401 came back; after it, single probes, each
    # after a pause (0.3 s, then 0.6 s), until the credentials work again at 0.8 s.
    assert in_flight <= len(refused) <= in_flight + 2
    waits = [later - earlier for earlier, later in itertools.pairwise(refused[in_flight - 1 :])]
    assert waits, "no probe followed the first refusal"
    assert all(wait >= 0.25 for wait in waits)
    assert probe.report()["delivered"] == count
    assert sum(m.attempts for m in rows) == count + len(refused)


def test_no_request_starts_at_or_after_the_end(probe):
    """A slow API and more messages than the window allows: what is not sent by the end is
    never sent, and no request reaches the simulator at or after `end_at`."""
    probe.set_faults(latency_ms=200)
    mailing = started_mailing(40)
    end_at = timezone.now() + timedelta(seconds=0.5)
    Mailing.objects.filter(id=mailing.id).update(end_at=end_at)

    Dispatcher(config(probe, in_flight=4)).run(budget=4)

    requests = probe.requests()
    assert requests, "some requests went out before the end"
    assert max(r["time"] for r in requests) < end_at.timestamp()
    tick.run(now=timezone.now(), horizon=0, lease=30)
    rows = messages(mailing)
    sent = [m for m in rows if m.status == S.SENT]
    assert 0 < len(sent) <= probe.report()["delivered"] < 40
    assert {m.status for m in rows} == {S.SENT, S.EXPIRED}


def test_the_budget_bounds_a_run_and_reports_work_left(probe):
    probe.set_faults(latency_ms=100)
    mailing = started_mailing(40)
    started = time.monotonic()

    more = Dispatcher(config(probe, in_flight=2)).run(budget=0.5)

    assert more is True
    assert time.monotonic() - started < 0.5 + 1.0
    rows = messages(mailing)
    # What was in flight at the deadline was finished and recorded; nothing is left claimed.
    assert not [m for m in rows if m.status == S.SENDING]
    assert 0 < len([m for m in rows if m.status == S.SENT]) < 40


def test_outcomes_survive_a_failed_write(probe, monkeypatch):
    """A write of outcomes that fails (the database went away for a moment) is retried: a
    lost outcome would leave a delivered message `sending`, to be sent again later."""
    mailing = started_mailing(10)
    write, calls = queries.messages_settle, []

    def fails_once(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return write(**kwargs)

    monkeypatch.setattr(queries, "messages_settle", fails_once)

    Dispatcher(config(probe)).run(budget=5)

    assert len(calls) >= 2
    assert {m.status for m in messages(mailing)} == {S.SENT}
    assert probe.report()["delivered"] == 10


def test_no_request_starts_outside_the_clients_send_window(probe):
    """Messages due now (say, they waited in a backlog) whose client's window has closed
    meanwhile are put back for its next opening, unsent and their attempt not counted; the
    others go. The window is re-checked at the claim, per client timezone."""
    now = timezone.now()
    open_zone, closed_zone = "Etc/GMT-6", "Etc/GMT+6"  # twelve hours apart
    start = datetime.now(ZoneInfo(open_zone)).replace(second=0, microsecond=0).time()
    window = SendWindow(start, (datetime.combine(date.min, start) + 2 * HOUR).time())
    assert window.contains(now, ZoneInfo(open_zone))
    assert not window.contains(now, ZoneInfo(closed_zone))
    inside = ClientFactory.create_batch(3, timezone=open_zone)
    outside = ClientFactory.create_batch(2, timezone=closed_zone)
    mailing = MailingFactory(
        start_at=now - SEC,
        end_at=now + 48 * HOUR,
        send_window_start=window.start,
        send_window_end=window.end,
    )
    queries.mailing_fan_out(mailing_id=mailing.id, now=now)  # no schedule: all due now

    Dispatcher(config(probe)).run(budget=3)

    assert {d["phone"] for d in probe.deliveries()} == {int(c.phone) for c in inside}
    later = {m.client_id: m for m in messages(mailing) if m.status == S.PENDING}
    assert set(later) == {c.id for c in outside}
    opening = window.next_opening(now, ZoneInfo(closed_zone))
    assert all(m.attempts == 0 and m.next_attempt_at == opening for m in later.values())
