"""The write path for mailings and clients: what each operation does to the messages. That
no request starts after a stopping operation returns is proven against the simulator, with a
real worker, in `test_stopping.py`."""

import pytest
from django.utils import timezone

from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MessageFactory
from notifier.sending.services import client_delete, mailing_cancel, mailing_delete
from notifier.sending.tests.support import HOUR, live_mailing, sending, statuses
from notifier.testing.logs import events, json_lines

pytestmark = pytest.mark.django_db

S = Message.Status


def test_cancel_cancels_pending_messages_and_leaves_claims_to_their_worker():
    mailing = live_mailing()
    pending = MessageFactory(mailing=mailing)
    in_flight = sending(mailing, lease_until=timezone.now() + HOUR)
    sent = MessageFactory(mailing=mailing, status=S.SENT, sent_at=timezone.now())

    mailing_cancel(mailing=mailing)

    assert statuses(mailing) == {
        pending.id: S.CANCELLED,
        in_flight.id: S.SENDING,
        sent.id: S.SENT,
    }
    mailing.refresh_from_db()
    assert mailing.cancelled_at is not None


def test_cancel_twice_changes_nothing_more():
    mailing = live_mailing()
    mailing_cancel(mailing=mailing)
    first = Mailing.objects.get(id=mailing.id).cancelled_at

    mailing_cancel(mailing=mailing)

    assert Mailing.objects.get(id=mailing.id).cancelled_at == first


def test_delete_removes_the_mailing_and_its_messages():
    mailing = live_mailing()
    MessageFactory(mailing=mailing)
    sending(mailing, lease_until=timezone.now() + HOUR)

    mailing_delete(mailing=mailing)

    assert not Mailing.objects.filter(id=mailing.id).exists()
    assert not Message.objects.filter(mailing_id=mailing.id).exists()


def test_every_line_of_a_deletion_names_the_mailing():
    """`mailing deleted` once carried `mailing_id: null` (read after Django had cleared the id):
    the deletion is the line an investigation most needs."""
    mailing = live_mailing()
    MessageFactory(mailing=mailing)
    mailing_id = mailing.id

    with json_lines(secrets=[]) as logs:
        mailing_delete(mailing=mailing)

    found = events(logs.lines)
    assert [e["event"] for e in found if e["event"].startswith("mailing ")] == [
        "mailing cancelled",
        "mailing deleted",
    ]
    assert all(e["mailing_id"] == mailing_id for e in found), found


def test_client_delete_cancels_its_unsent_messages_and_keeps_its_history():
    message = MessageFactory(mailing=live_mailing())
    sent = MessageFactory(
        mailing=live_mailing(), client=message.client, status=S.SENT, sent_at=timezone.now()
    )
    in_flight = sending(live_mailing(), client=message.client, lease_until=timezone.now() + HOUR)
    other = MessageFactory(mailing=message.mailing)

    client_delete(client=message.client)

    rows = {m.id: m for m in Message.objects.all()}
    assert (rows[message.id].status, rows[message.id].client_id) == (S.CANCELLED, None)
    assert rows[message.id].phone == message.phone
    assert (rows[sent.id].status, rows[sent.id].client_id) == (S.SENT, None)
    assert (rows[in_flight.id].status, rows[in_flight.id].client_id) == (S.SENDING, None)
    assert (rows[other.id].status, rows[other.id].client_id) == (S.PENDING, other.client_id)
