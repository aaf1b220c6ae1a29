"""The database itself holds the invariants, whatever code (or person) writes to it."""

from datetime import timedelta

import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import MAY_SEND_SQL, Mailing, Message
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


def test_the_may_send_rule_is_one_rule_in_python_the_orm_and_sql():
    """`Mailing.may_send`, `Mailing.objects.may_send` and the SQL fragment raw statements use
    (`MAY_SEND_SQL`) pick the same mailings, whatever state each one is in."""
    now = timezone.now()
    hour = timedelta(hours=1)
    mailings = [
        MailingFactory(start_at=now - hour, end_at=now + hour),  # running
        MailingFactory(start_at=now, end_at=now + hour),  # starts this instant
        MailingFactory(start_at=now + hour, end_at=now + 2 * hour),  # scheduled
        MailingFactory(start_at=now - 2 * hour, end_at=now),  # ends this instant
        MailingFactory(start_at=now - 2 * hour, end_at=now - hour),  # over
        MailingFactory(start_at=now - hour, end_at=now + hour, cancelled_at=now),
        MailingFactory(start_at=now - hour, end_at=now + hour, finished_at=now),
    ]
    table = Mailing._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE {MAY_SEND_SQL.format(m=table)}",  # noqa: S608
            {"now": connection.ops.adapt_datetimefield_value(now)},
        )
        in_sql = {row[0] for row in cursor.fetchall()}

    in_python = {m.id for m in mailings if m.may_send(now)}
    in_orm = set(Mailing.objects.may_send(now).values_list("id", flat=True))

    assert in_python == in_orm == in_sql == {mailings[0].id, mailings[1].id, mailings[6].id}


@pytest.mark.parametrize(
    ("operator_codes", "tags"),
    [
        ("916", []),  # a string: fan-out would iterate its characters
        ([916], []),
        (["91"], []),
        ({"codes": ["916"]}, []),
        ([], "vip"),
        ([], [1]),
        ([], ["vip", None]),
        ([], {"tag": "vip"}),
    ],
)
def test_a_filter_is_two_lists_of_strings(operator_codes, tags):
    now = timezone.now()
    assert refused(
        lambda: Mailing.objects.create(
            start_at=now,
            end_at=now + timedelta(hours=1),
            text="x",
            operator_codes=operator_codes,
            tags=tags,
        )
    )


def test_a_filter_of_any_strings_is_accepted():
    now = timezone.now()
    mailing = Mailing.objects.create(
        start_at=now,
        end_at=now + timedelta(hours=1),
        text="x",
        operator_codes=["903", "916"],
        tags=["", 'say "hi"', "back\\slash", "ёлка, и запятая"],
    )
    mailing.refresh_from_db()
    assert mailing.tags == ["", 'say "hi"', "back\\slash", "ёлка, и запятая"]
