"""The tick's steps, from rows in every state. Runs on SQLite and on PostgreSQL."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MailingFactory, MessageFactory
from notifier.sending.models import TickClock
from notifier.sending.tests.support import live_mailing, sending, statuses
from notifier.sending.tick import TickReport, run

pytestmark = pytest.mark.django_db

S = Message.Status
SEC = timedelta(seconds=1)
HOUR = timedelta(hours=1)


LEASE = 30.0


@pytest.fixture(autouse=True)
def ticking() -> None:
    """Beat has been ticking: leases that ran out were watched running out."""
    TickClock.objects.create(id=1, ran_at=timezone.now())


def tick(now: datetime | None = None, horizon: float = 3.0) -> TickReport:
    return run(now=now or timezone.now(), horizon=horizon, lease=LEASE)


def test_tick_returns_claims_with_expired_leases_to_the_queue():
    now = timezone.now()
    mailing = live_mailing()
    dead = sending(mailing, lease_until=now - SEC, next_attempt_at=now - HOUR)
    alive = sending(mailing, lease_until=now + HOUR)

    report = tick(now)

    assert report.reclaimed == 1
    dead.refresh_from_db()
    assert (dead.status, dead.lease_until, dead.next_attempt_at) == (S.PENDING, None, now)
    assert dead.attempts == 1
    assert "lease expired" in dead.last_error
    alive.refresh_from_db()
    assert alive.status == S.SENDING
    assert report.due
    assert report.finished == []


def test_tick_expires_what_is_left_at_the_end_saying_why():
    now = timezone.now()
    mailing = live_mailing(start_at=now - HOUR, end_at=now - SEC)
    pending = MessageFactory(mailing=mailing)
    retrying = MessageFactory(mailing=mailing, attempts=3, last_error="HTTP 503")
    dead = sending(mailing, lease_until=now - SEC)
    sent = MessageFactory(mailing=mailing, status=S.SENT, sent_at=now - HOUR)

    report = tick(now)

    assert report.expired == {mailing.id: 3}
    assert report.reclaimed == 0
    assert statuses(mailing) == {
        pending.id: S.EXPIRED,
        retrying.id: S.EXPIRED,
        dead.id: S.EXPIRED,
        sent.id: S.SENT,
    }
    errors = dict(Message.objects.values_list("id", "last_error"))
    assert errors[pending.id] == "expired: the mailing ended before it was sent"
    assert errors[retrying.id] == (
        "expired: the mailing ended before its next attempt; last error: HTTP 503"
    )
    assert report.finished == [mailing.id]
    mailing.refresh_from_db()
    assert mailing.finished_at == now


def test_tick_waits_for_a_live_claim_of_an_ended_mailing():
    """A request started before the end may still succeed: its claim is left to settle."""
    now = timezone.now()
    mailing = live_mailing(start_at=now - HOUR, end_at=now - SEC)
    in_flight = sending(mailing, lease_until=now + 5 * SEC)

    report = tick(now)

    assert statuses(mailing) == {in_flight.id: S.SENDING}
    assert report.finished == []
    for second in range(1, 6):  # beat ticks on, and the claim's lease runs out
        tick(now + second * SEC)
    later = tick(now + 6 * SEC)
    assert statuses(mailing) == {in_flight.id: S.EXPIRED}
    assert later.finished == [mailing.id]


def test_tick_cancels_what_is_left_of_a_cancelled_mailing():
    now = timezone.now()
    mailing = live_mailing(cancelled_at=now - SEC)
    pending = MessageFactory(mailing=mailing)
    dead = sending(mailing, lease_until=now - SEC)
    in_flight = sending(mailing, lease_until=now + HOUR)

    report = tick(now)

    assert report.cancelled == 2
    assert report.reclaimed == 0
    assert statuses(mailing) == {
        pending.id: S.CANCELLED,
        dead.id: S.CANCELLED,
        in_flight.id: S.SENDING,
    }
    assert report.finished == []


def test_tick_cancels_pending_messages_of_deleted_clients():
    now = timezone.now()
    mailing = live_mailing()
    orphan, kept = MessageFactory.create_batch(2, mailing=mailing, next_attempt_at=now + HOUR)
    orphan.client.delete()

    report = tick(now)

    assert report.cancelled == 1
    assert statuses(mailing) == {orphan.id: S.CANCELLED, kept.id: S.PENDING}
    assert Message.objects.get(id=orphan.id).phone == orphan.phone


def test_tick_does_not_requeue_a_dead_claim_of_a_deleted_client():
    """A claim whose worker died and whose client was deleted must not stay `sending` (and
    keep its mailing running) until the end: it is never sent, so it becomes `cancelled`."""
    now = timezone.now()
    mailing = live_mailing()
    orphan = sending(mailing, lease_until=now - SEC)
    orphan.client.delete()

    report = tick(now)

    assert statuses(mailing) == {orphan.id: S.CANCELLED}
    assert report.finished == [mailing.id]


def test_tick_finishes_a_mailing_only_when_nothing_is_active():
    now = timezone.now()
    done = live_mailing()
    MessageFactory(mailing=done, status=S.SENT, sent_at=now)
    MessageFactory(mailing=done, status=S.FAILED)
    busy = live_mailing()
    MessageFactory(mailing=busy, status=S.SENT, sent_at=now)
    MessageFactory(mailing=busy, next_attempt_at=now + HOUR)
    in_flight = live_mailing()
    sending(in_flight, lease_until=now + HOUR)
    empty = live_mailing()  # no client matched its filter
    not_started = MailingFactory(start_at=now + HOUR, end_at=now + 2 * HOUR)

    report = tick(now)

    assert sorted(report.finished) == sorted([done.id, empty.id])
    finished = set(Mailing.objects.filter(finished_at=now).values_list("id", flat=True))
    assert finished == {done.id, empty.id}
    assert Mailing.objects.get(id=not_started.id).finished_at is None
    assert tick(now + SEC).finished == []  # already finished: reported once


def test_tick_reports_mailings_to_start_and_starting_soon():
    now = timezone.now()
    due = MailingFactory(start_at=now - SEC, end_at=now + HOUR)
    starting_now = MailingFactory(start_at=now, end_at=now + HOUR)
    soon = MailingFactory(start_at=now + 2 * SEC, end_at=now + HOUR)
    MailingFactory(start_at=now + HOUR, end_at=now + 2 * HOUR)  # beyond the horizon
    live_mailing()  # already fanned out
    MailingFactory(start_at=now - SEC, end_at=now + HOUR, cancelled_at=now)
    MailingFactory(start_at=now - HOUR, end_at=now - SEC)  # missed its whole window

    report = tick(now, horizon=3.0)

    assert sorted(report.to_start) == sorted([due.id, starting_now.id])
    assert report.starting_soon == [(soon.id, soon.start_at)]


def test_tick_reports_due_work_only_when_a_live_mailing_has_some():
    now = timezone.now()
    mailing = live_mailing()
    MessageFactory(mailing=mailing, next_attempt_at=now + SEC)
    MessageFactory(mailing=live_mailing(cancelled_at=now), next_attempt_at=now - SEC)
    MessageFactory(
        mailing=live_mailing(start_at=now - HOUR, end_at=now - SEC), next_attempt_at=now - HOUR
    )
    assert tick(now).due is False

    assert tick(now + SEC).due is True


def test_tick_is_idempotent():
    now = timezone.now()
    mailing = live_mailing()
    sending(mailing, lease_until=now - SEC)
    first = tick(now)
    second = tick(now)
    assert first.reclaimed == 1
    assert (second.reclaimed, second.expired.total(), second.cancelled) == (0, 0, 0)


def test_after_a_silence_claims_get_a_new_lease_instead_of_being_requeued():
    """The database was down for longer than a lease: the worker holding the claim may be
    alive, waiting to write a delivery. Requeueing would send it twice."""
    now = timezone.now()
    mailing = live_mailing()
    held = sending(mailing, lease_until=now + 20 * SEC)

    report = tick(now + 31 * SEC)  # nothing ticked in between

    assert report.reclaimed == 0
    held.refresh_from_db()
    assert held.status == S.SENDING
    assert held.lease_until == now + 31 * SEC + timedelta(seconds=LEASE)
    # Watched from then on, a lease that runs out means a dead worker again.
    reclaimed = [tick(now + second * SEC).reclaimed for second in range(32, 32 + int(LEASE) + 2)]
    assert sum(reclaimed) == 1
    held.refresh_from_db()
    assert held.status == S.PENDING


def test_the_first_tick_ever_renews_leases_rather_than_trusting_them():
    """No earlier tick: nobody knows whether a worker holding a claim is alive."""
    TickClock.objects.all().delete()
    now = timezone.now()
    held = sending(live_mailing(), lease_until=now - SEC)

    assert tick(now).reclaimed == 0

    held.refresh_from_db()
    assert (held.status, held.lease_until) == (S.SENDING, now + timedelta(seconds=LEASE))
