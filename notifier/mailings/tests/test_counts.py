"""The per-mailing counts the statistics read are kept by database triggers: whatever writes
messages (the ORM, bulk updates, raw SQL, deletes), the counts equal a real COUNT(*)."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Message, MessageCount, MessageErrorMinute, MessageMinute
from notifier.mailings.tests.factories import MailingFactory, MessageFactory

pytestmark = pytest.mark.django_db


def kept() -> Counter:
    """The counts as the statistics read them: the sum of base and delta rows."""
    rows = MessageCount.objects.values_list("mailing_id", "status").annotate(n=Sum("number"))
    return Counter({(m, s): n for m, s, n in rows if n})


def real() -> Counter:
    return Counter((m, s) for m, s in Message.objects.values_list("mailing_id", "status"))


def test_counts_follow_every_kind_of_write():
    a, b = MailingFactory(), MailingFactory()
    MessageFactory.create_batch(5, mailing=a)
    MessageFactory.create_batch(3, mailing=b)
    assert kept() == real() == Counter({(a.id, "pending"): 5, (b.id, "pending"): 3})

    Message.objects.filter(mailing=a).update(status="sending")  # a bulk update
    first = Message.objects.filter(mailing=a).first()
    assert first is not None
    first.status, first.sent_at = "sent", timezone.now()
    first.save()  # one row through the ORM
    Message.objects.filter(mailing=b).update(attempts=2)  # no status change at all
    with connection.cursor() as cursor:  # raw SQL, as the engine writes
        cursor.execute(
            "UPDATE mailings_message SET status = 'expired' WHERE mailing_id = %s", [b.id]
        )
    Message.objects.filter(id=first.id).delete()
    assert kept() == real()
    assert kept() == Counter({(a.id, "sending"): 4, (b.id, "expired"): 3})


def test_a_set_based_insert_is_counted_once_per_row():
    mailing = MailingFactory()
    clients = ClientFactory.create_batch(7)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO mailings_message (mailing_id, client_id, phone, status, attempts,"
            " last_error, created_at, next_attempt_at)"
            " SELECT %s, id, phone, 'pending', 0, '', %s, %s FROM clients_client",
            [mailing.id, *[connection.ops.adapt_datetimefield_value(timezone.now())] * 2],
        )
    assert kept() == real() == Counter({(mailing.id, "pending"): len(clients)})


def test_deleting_a_mailing_takes_its_counts_to_zero():
    mailing = MailingFactory()
    MessageFactory.create_batch(4, mailing=mailing)

    mailing.delete()

    assert kept() == Counter()


# -- the per-minute rollup of outcomes -------------------------------------------------------


def minutes() -> Counter:
    rows = MessageMinute.objects.values_list("mailing_id", "status").annotate(n=Sum("number"))
    return Counter({(m, s): n for m, s, n in rows if n})


def test_each_message_reaching_a_final_status_is_counted_in_its_minute():
    mailing = MailingFactory()
    messages = MessageFactory.create_batch(5, mailing=mailing)
    Message.objects.filter(id__in=[m.id for m in messages[:3]]).update(
        status="sent", sent_at=timezone.now()
    )
    Message.objects.filter(id=messages[3].id).update(status="failed")
    Message.objects.filter(id=messages[4].id).update(status="sending")  # not final: not here

    assert minutes() == Counter({(mailing.id, "sent"): 3, (mailing.id, "failed"): 1})
    minute = MessageMinute.objects.values_list("minute", flat=True).first()
    now = timezone.now()
    assert minute is not None
    assert minute.second == 0
    assert now - timedelta(minutes=1) < minute <= now


def test_a_status_set_again_is_not_counted_twice_and_a_final_insert_counts():
    mailing = MailingFactory()
    message = MessageFactory(mailing=mailing, status="expired")  # as fan-out expires some
    Message.objects.filter(id=message.id).update(status="expired", last_error="again")

    assert minutes() == Counter({(mailing.id, "expired"): 1})


def test_the_rollup_outlives_the_mailing():
    """The history of what was delivered when stays, as sent messages stay in the report."""
    mailing = MailingFactory()
    message = MessageFactory(mailing=mailing)
    Message.objects.filter(id=message.id).update(status="sent", sent_at=timezone.now())

    mailing_id = mailing.id
    mailing.delete()

    assert minutes() == Counter({(mailing_id, "sent"): 1})


# -- the per-minute rollup of errors ---------------------------------------------------------


def errors() -> Counter:
    rows = MessageErrorMinute.objects.values_list("mailing_id", "status", "error").annotate(
        n=Sum("number")
    )
    return Counter({(m, s, e): n for m, s, e, n in rows if n})


def test_failed_and_expired_messages_are_counted_by_their_error():
    mailing = MailingFactory()
    messages = MessageFactory.create_batch(6, mailing=mailing)
    ids = [m.id for m in messages]
    Message.objects.filter(id__in=ids[:2]).update(status="failed", last_error="HTTP 400: bad")
    with connection.cursor() as cursor:  # as the engine settles: status and error at once
        cursor.execute(
            "UPDATE mailings_message SET status = 'expired', last_error = 'expired: late'"
            " WHERE id IN (%s, %s)",
            ids[2:4],
        )
    Message.objects.filter(id=ids[4]).update(status="sent", sent_at=timezone.now())
    Message.objects.filter(id=ids[5]).update(status="pending", last_error="HTTP 503")  # retried
    Message.objects.filter(id=ids[0]).update(last_error="changed, not settled again")
    MessageFactory(mailing=mailing, status="expired", last_error="outside the window")

    assert errors() == Counter(
        {
            (mailing.id, "failed", "HTTP 400: bad"): 2,
            (mailing.id, "expired", "expired: late"): 2,
            (mailing.id, "expired", "outside the window"): 1,
        }
    )
    minute = MessageErrorMinute.objects.values_list("minute", flat=True).first()
    assert minute is not None
    assert minute.second == 0
