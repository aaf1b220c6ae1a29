"""The engine end to end, with real processes: a Celery worker and beat started through the
Procfile's entry scripts, Redis (PostgreSQL runs) or the file broker (SQLite runs), the test
database, and the simulator of the external API as the witness of what was really sent."""

import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from notifier.clients.models import Client
from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message
from notifier.mailings.services import mailing_create
from notifier.sending.tests.stack import wait_for

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
