"""The Celery tasks and the wake-ups, against a real broker: what each one publishes, with
which `eta` and expiry, and what a dead broker does to the caller (nothing)."""

import logging
import socket
from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Message
from notifier.mailings.tests.factories import MailingFactory, MessageFactory
from notifier.sending import tasks
from notifier.sending.tests.support import live_mailing
from notifier.sending.wakeups import START_HORIZON, wake_after_commit
from notifier.testing.stack import point_publisher_at, published, wait_for

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def test_tick_starts_due_mailings_now_and_times_those_starting_soon(file_broker):
    now = timezone.now()
    due = MailingFactory(start_at=now - timedelta(seconds=1), end_at=now + HOUR)
    soon = MailingFactory(start_at=now + timedelta(seconds=2), end_at=now + HOUR)
    MailingFactory(start_at=now + HOUR, end_at=now + 2 * HOUR)  # the tick finds it later

    tasks.tick()

    sent = published(file_broker)
    assert [(t["task"], t["args"]) for t in sent] == [
        ("sending.start_mailing", [due.id]),
        ("sending.start_mailing", [soon.id]),
    ]
    assert sent[0]["eta"] is None
    assert at(sent[1]["eta"]) == soon.start_at
    # A timed start nobody ran in time is dropped: a later tick starts it instead.
    expires = at(sent[1]["expires"])
    assert expires is not None
    assert timedelta(0) < expires - now <= timedelta(seconds=START_HORIZON + 61)


def test_tick_wakes_the_send_loops_only_when_something_is_due(file_broker):
    mailing = live_mailing()
    message = MessageFactory(mailing=mailing, next_attempt_at=timezone.now() + HOUR)

    tasks.tick()
    assert published(file_broker) == []

    Message.objects.filter(id=message.id).update(next_attempt_at=timezone.now())
    tasks.tick()
    assert [t["task"] for t in published(file_broker)] == ["sending.dispatch"]


def test_start_mailing_fans_out_once_and_wakes_the_send_loops(file_broker):
    ClientFactory.create_batch(3)
    now = timezone.now()
    mailing = MailingFactory(start_at=now - timedelta(seconds=1), end_at=now + HOUR)

    tasks.start_mailing(mailing.id)
    tasks.start_mailing(mailing.id)  # a duplicate wake-up: nothing more

    assert Message.objects.filter(mailing=mailing).count() == 3
    assert [t["task"] for t in published(file_broker)] == ["sending.dispatch"]


def test_a_wake_up_is_published_only_once_its_transaction_commits(
    file_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        wake_after_commit("sending.start_mailing", 42)
        assert published(file_broker) == []

    sent = wait_for(lambda: published(file_broker), timeout=5, what="the wake-up")
    assert [(t["task"], t["args"]) for t in sent] == [("sending.start_mailing", [42])]


def test_a_dead_broker_costs_the_caller_nothing_and_is_logged(
    django_capture_on_commit_callbacks, caplog
):
    """The API commits and answers; the wake-up is given up with a warning, and the tick
    finds the work instead."""
    from django.conf import settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # nothing listens there once closed
    point_publisher_at(f"redis://127.0.0.1:{dead_port}/0", settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    try:
        with (
            caplog.at_level(logging.WARNING),
            django_capture_on_commit_callbacks(execute=True),
            transaction.atomic(),
        ):
            mailing = MailingFactory()
            wake_after_commit("sending.start_mailing", mailing.id)
        wait_for(lambda: "wake-up not published" in caplog.text, timeout=10, what="the warning")
    finally:
        point_publisher_at(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    assert mailing.id in {m.id for m in type(mailing).objects.all()}
