"""The database itself holds the invariants, whatever code (or person) writes to it."""

from datetime import timedelta

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MailingFactory, MessageFactory

pytestmark = pytest.mark.django_db


def refused(write) -> bool:
    try:
        with transaction.atomic():
            write()
    except (IntegrityError, DataError):  # DataError: PostgreSQL's varchar length
        return True
    return False


def test_mailing_end_after_start():
    now = timezone.now()

    assert refused(lambda: Mailing.objects.create(start_at=now, end_at=now, text="x"))
    assert refused(
        lambda: Mailing.objects.create(start_at=now, end_at=now - timedelta(1), text="x")
    )


@pytest.mark.parametrize("text", ["", "x" * 1001])
def test_mailing_text_length(text):
    now = timezone.now()

    assert refused(
        lambda: Mailing.objects.create(start_at=now, end_at=now + timedelta(1), text=text)
    )


def test_one_message_per_mailing_and_client():
    message = MessageFactory()

    assert refused(
        lambda: Message.objects.create(
            mailing=message.mailing, client=message.client, phone=message.phone
        )
    )


def test_message_status_values():
    message = MessageFactory()

    assert refused(lambda: Message.objects.filter(id=message.id).update(status="delivered"))


def test_sent_message_has_a_send_time():
    message = MessageFactory()

    assert refused(lambda: Message.objects.filter(id=message.id).update(status="sent"))


def test_attempts_are_not_negative():
    message = MessageFactory()

    assert refused(lambda: Message.objects.filter(id=message.id).update(attempts=-1))


def test_messages_of_deleted_clients_stay_and_may_repeat_per_mailing():
    mailing = MailingFactory()
    first, second = MessageFactory(mailing=mailing), MessageFactory(mailing=mailing)

    first.client.delete()
    second.client.delete()

    assert Message.objects.filter(mailing=mailing, client=None).count() == 2


def test_message_defaults_come_from_the_database():
    """Fan-out inserts rows with set-based SQL, so defaults must live in the schema."""
    mailing = MailingFactory()
    client = ClientFactory()

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Message._meta.db_table} (mailing_id, client_id, phone)"  # noqa: S608
            " VALUES (%s, %s, %s)",
            [mailing.id, client.id, client.phone],
        )
    message = Message.objects.get()
    assert (message.status, message.attempts, message.last_error) == ("pending", 0, "")
    assert abs(message.created_at - timezone.now()) < timedelta(minutes=1)
