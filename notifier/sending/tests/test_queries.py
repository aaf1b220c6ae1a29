"""The engine's SQL: fan-out, claims and settlements. Runs on SQLite and on PostgreSQL."""

import functools
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message, MessageCount, MessageErrorMinute
from notifier.mailings.tests.factories import MailingFactory, MessageFactory
from notifier.mailings.tests.test_counts import errors as errors_kept
from notifier.mailings.tests.test_counts import kept as counts_kept
from notifier.mailings.tests.test_counts import real as counts_real
from notifier.sending import queries
from notifier.sending.models import AttemptMinute
from notifier.sending.policy import OUTSIDE_WINDOW, Settlement, release
from notifier.sending.settings import EngineSettings
from notifier.sending.tests.support import live_mailing, statuses

pytestmark = pytest.mark.django_db

S = Message.Status
LEASE = 30.0
SEC = timedelta(seconds=1)
HOUR = timedelta(hours=1)


def due_messages(mailing: Mailing, count: int, *, now: datetime) -> list[Message]:
    """`count` pending messages, due one millisecond apart, the first the longest waiting."""
    return [
        cast(
            Message,
            MessageFactory(
                mailing=mailing, next_attempt_at=now - SEC + i * timedelta(milliseconds=1)
            ),
        )
        for i in range(count)
    ]


def claim(
    mailing: Mailing, *, now: datetime | None = None, limit: int = 100
) -> list[queries.Claim]:
    return queries.messages_claim(
        mailing_id=mailing.id, limit=limit, now=now or timezone.now(), lease=LEASE
    )


# -- fan-out ---------------------------------------------------------------------------------


@pytest.fixture
def directory() -> dict[str, Any]:
    """Clients across two operator codes and two tags (and none)."""
    return {
        "903-vip": ClientFactory(phone="79031110001", tag="vip"),
        "903-": ClientFactory(phone="79031110002", tag=""),
        "916-vip": ClientFactory(phone="79161110003", tag="vip"),
        "916-new": ClientFactory(phone="79161110004", tag="new"),
        "926-new": ClientFactory(phone="79261110005", tag="new"),
    }


@pytest.mark.parametrize(
    ("operator_codes", "tags", "expected"),
    [
        ([], [], {"903-vip", "903-", "916-vip", "916-new", "926-new"}),
        (["903"], [], {"903-vip", "903-"}),
        (["903", "926"], [], {"903-vip", "903-", "926-new"}),
        ([], ["vip"], {"903-vip", "916-vip"}),
        (["916", "926"], ["new"], {"916-new", "926-new"}),
        (["903"], ["new"], set()),
    ],
)
def test_fan_out_creates_one_pending_message_per_matching_client(
    directory, operator_codes, tags, expected
):
    now = timezone.now()
    mailing = MailingFactory(
        start_at=now - SEC, end_at=now + HOUR, operator_codes=operator_codes, tags=tags
    )

    fan_out = queries.mailing_fan_out(mailing_id=mailing.id, now=now)

    assert fan_out == queries.FanOut(len(expected), 0)
    messages = list(Message.objects.filter(mailing=mailing))
    assert {(m.client_id, m.phone) for m in messages} == {
        (directory[key].id, directory[key].phone) for key in expected
    }
    for m in messages:
        assert (m.status, m.attempts, m.last_error, m.sent_at) == (S.PENDING, 0, "", None)
        assert m.next_attempt_at == now
    mailing.refresh_from_db()
    assert mailing.fanned_out_at == now


def test_fan_out_twice_creates_nothing_new(directory):
    now = timezone.now()
    mailing = MailingFactory(start_at=now - SEC, end_at=now + HOUR)
    assert queries.mailing_fan_out(mailing_id=mailing.id, now=now) == queries.FanOut(5, 0)
    ClientFactory()  # a client added after the start is not in this mailing

    assert queries.mailing_fan_out(mailing_id=mailing.id, now=now + SEC) is None
    assert Message.objects.filter(mailing=mailing).count() == 5
    mailing.refresh_from_db()
    assert mailing.fanned_out_at == now


def test_fan_out_rerun_after_a_lost_mark_creates_no_duplicates(directory):
    """Even if the "fanned out" mark were lost, the unique (mailing, client) pair holds."""
    now = timezone.now()
    mailing = MailingFactory(start_at=now - SEC, end_at=now + HOUR)
    queries.mailing_fan_out(mailing_id=mailing.id, now=now)
    Mailing.objects.filter(id=mailing.id).update(fanned_out_at=None)

    assert queries.mailing_fan_out(mailing_id=mailing.id, now=now) == queries.FanOut(0, 0)
    assert Message.objects.filter(mailing=mailing).count() == 5


@pytest.mark.parametrize(
    ("start", "end", "cancelled"),
    [
        (-HOUR, HOUR, True),  # cancelled
        (SEC, HOUR, False),  # not yet started
        (-HOUR, -SEC, False),  # over
        (-HOUR, timedelta(0), False),  # ends exactly now
    ],
    ids=["cancelled", "not-started", "over", "ends-now"],
)
def test_fan_out_refuses_a_mailing_outside_its_window(directory, start, end, cancelled):
    now = timezone.now()
    mailing = MailingFactory(
        start_at=now + start, end_at=now + end, cancelled_at=now - SEC if cancelled else None
    )
    assert queries.mailing_fan_out(mailing_id=mailing.id, now=now) is None
    assert not Message.objects.filter(mailing=mailing).exists()
    mailing.refresh_from_db()
    assert mailing.fanned_out_at is None


# -- claims ----------------------------------------------------------------------------------


def test_claim_takes_due_pending_messages_with_a_lease():
    now = timezone.now()
    mailing = live_mailing(text="Sale!")
    [message] = due_messages(mailing, 1, now=now)

    [c] = claim(mailing, now=now)

    assert (c.id, c.phone, c.attempts) == (message.id, message.phone, 1)
    assert (c.mailing.id, c.mailing.text, c.mailing.end_at) == (mailing.id, "Sale!", mailing.end_at)
    message.refresh_from_db()
    assert message.status == S.SENDING
    assert message.attempts == 1
    assert message.lease_until == now + timedelta(seconds=LEASE)


def test_claim_skips_messages_that_are_not_due_or_not_pending():
    now = timezone.now()
    mailing = live_mailing()
    [due] = due_messages(mailing, 1, now=now)
    MessageFactory(mailing=mailing, next_attempt_at=now + SEC)  # a retry not yet due
    MessageFactory(mailing=mailing, status=S.SENT, sent_at=now, next_attempt_at=now - SEC)
    for status in (S.SENDING, S.FAILED, S.EXPIRED, S.CANCELLED):
        MessageFactory(mailing=mailing, status=status, next_attempt_at=now - SEC)
    orphan = MessageFactory(mailing=mailing, next_attempt_at=now - SEC)
    orphan.client.delete()  # the client was deleted: the message keeps its phone, not its link
    other = live_mailing()
    due_messages(other, 1, now=now)  # another mailing's message

    assert [c.id for c in claim(mailing, now=now)] == [due.id]


@pytest.mark.parametrize(
    ("shift", "cancelled"),
    [
        (timedelta(0), True),  # cancelled
        (-HOUR, False),  # before the start
        (HOUR, False),  # exactly at the end
        (HOUR + SEC, False),  # after the end
    ],
    ids=["cancelled", "before-start", "at-end", "after-end"],
)
def test_claim_takes_nothing_from_a_mailing_outside_its_window(shift, cancelled):
    now = timezone.now()
    mailing = live_mailing(
        start_at=now - SEC, end_at=now + HOUR, cancelled_at=now if cancelled else None
    )
    messages = MessageFactory.create_batch(3, mailing=mailing, next_attempt_at=now - HOUR)

    assert claim(mailing, now=now + shift) == []
    assert set(statuses(mailing).values()) == {S.PENDING}
    assert all(m.attempts == 0 for m in Message.objects.filter(id__in=[m.id for m in messages]))


def test_claim_of_a_deleted_mailing_takes_nothing():
    mailing = live_mailing()
    mailing_id = mailing.id
    mailing.delete()
    assert (
        queries.messages_claim(mailing_id=mailing_id, limit=10, now=timezone.now(), lease=1) == []
    )


def test_claim_respects_the_limit_longest_waiting_first():
    now = timezone.now()
    mailing = live_mailing()
    messages = due_messages(mailing, 10, now=now)
    # Saved in reverse so that id order and waiting order differ.
    for m, at in zip(messages, reversed([m.next_attempt_at for m in messages]), strict=True):
        Message.objects.filter(id=m.id).update(next_attempt_at=at)

    claims = claim(mailing, now=now, limit=3)

    assert sorted(c.id for c in claims) == sorted(m.id for m in messages[-3:])
    assert list(statuses(mailing).values()).count(S.SENDING) == 3


def test_successive_claims_never_return_the_same_message():
    now = timezone.now()
    mailing = live_mailing()
    messages = due_messages(mailing, 10, now=now)

    first, second, third = (claim(mailing, now=now, limit=4) for _ in range(3))

    ids = [c.id for c in first + second + third]
    assert len(ids) == len(set(ids)) == 10
    assert sorted(ids) == sorted(m.id for m in messages)
    assert claim(mailing, now=now) == []


def _bulk_messages(mailing: Mailing, count: int) -> None:
    """`count` new clients, tagged for `mailing` alone, and its pending messages to them."""
    tag = f"m{mailing.id}"
    Mailing.objects.filter(id=mailing.id).update(tags=[tag])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO clients_client (phone, operator_code, tag, timezone, created_at,"
            " updated_at) SELECT '7' || lpad((g + (SELECT coalesce(max(id), 0)"
            " FROM clients_client))::text, 10, '0'), '916', %s, 'UTC', now(), now()"
            " FROM generate_series(1, %s) g",
            [tag, count],
        )
    assert queries.mailing_fan_out(mailing_id=mailing.id, now=timezone.now()) == queries.FanOut(
        count, 0
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_claim_reads_due_messages_in_order_even_for_a_mailing_the_statistics_never_saw():
    # The statistics know one mailing; a second one, as big, starts before autovacuum's
    # next ANALYZE. Its id is not among the common values, so PostgreSQL expects a handful
    # of rows: a claim must still read the due index in order, not sort them all each time.
    now = timezone.now()
    seen = live_mailing(start_at=now - SEC, fanned_out_at=None)
    _bulk_messages(seen, 20_000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Message._meta.db_table}")
    new = live_mailing(start_at=now - SEC, fanned_out_at=None)
    _bulk_messages(new, 20_000)

    with CaptureQueriesContext(connection) as queries:
        assert len(claim(new, limit=100)) == 100
    [statement] = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {statement}")
        plan = "\n".join(line for (line,) in cursor.fetchall())

    assert "message_due_idx" in plan
    assert "Sort" not in plan


def _in_thread(fn: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread opened its own connection

    return threading.Thread(target=run)


@pytest.mark.django_db(transaction=True)
def test_a_claim_in_progress_is_never_claimed_again_by_a_concurrent_worker() -> None:
    """Worker A holds its claim's transaction open while worker B claims on its own connection.
    On PostgreSQL, B skips A's locked rows without waiting (SKIP LOCKED); SQLite serialises
    writers, so B waits for A. Either way the two claims never overlap."""
    now = timezone.now()
    mailing = live_mailing()
    due_messages(mailing, 10, now=now)
    a_claimed, b_done = threading.Event(), threading.Event()
    claims: dict[str, list[int]] = {}
    b_finished_while_a_held: list[bool] = []
    errors: list[BaseException] = []
    hold = 2.0 if connection.vendor == "postgresql" else 0.3

    def worker_a() -> None:
        with transaction.atomic():
            claims["a"] = [c.id for c in claim(mailing, now=now, limit=4)]
            a_claimed.set()
            b_finished_while_a_held.append(b_done.wait(timeout=hold))

    def worker_b() -> None:
        a_claimed.wait(timeout=5)
        claims["b"] = [c.id for c in claim(mailing, now=now, limit=4)]
        b_done.set()

    threads = [_in_thread(worker_a, errors), _in_thread(worker_b, errors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors
    assert len(claims["a"]) == len(claims["b"]) == 4
    assert not set(claims["a"]) & set(claims["b"])
    # PostgreSQL: B did not wait for A's transaction; SQLite: it did.
    assert b_finished_while_a_held == [connection.vendor == "postgresql"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_share_the_work_without_overlap() -> None:
    now = timezone.now()
    mailing = live_mailing()
    messages = due_messages(mailing, 60, now=now)
    start = threading.Barrier(4)
    taken: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def worker(mine: list[int]) -> None:
        start.wait(timeout=5)
        while batch := claim(mailing, now=now, limit=3):
            mine += [c.id for c in batch]

    threads = [_in_thread(functools.partial(worker, mine), errors) for mine in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors
    ids = [i for mine in taken for i in mine]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(m.id for m in messages)
    assert Message.objects.filter(mailing=mailing, status=S.SENDING, attempts=1).count() == 60


# -- settlements -----------------------------------------------------------------------------


@pytest.fixture
def claimed() -> Message:
    """A message claimed once (attempt 1), with the error of an earlier lost lease."""
    now = timezone.now()
    mailing = live_mailing()
    [message] = due_messages(mailing, 1, now=now)
    Message.objects.filter(id=message.id).update(last_error="earlier error")
    claim(mailing, now=now)
    message.refresh_from_db()
    assert (message.status, message.attempts) == (S.SENDING, 1)
    return message


def test_settle_sent(claimed):
    at = timezone.now()
    queries.messages_settle([Settlement(claimed.id, 1, S.SENT, sent_at=at)])
    claimed.refresh_from_db()
    assert (claimed.status, claimed.sent_at, claimed.attempts) == (S.SENT, at, 1)
    assert claimed.lease_until is None


def test_settle_failed_records_the_reason(claimed):
    queries.messages_settle([Settlement(claimed.id, 1, S.FAILED, last_error="HTTP 400")])
    claimed.refresh_from_db()
    assert (claimed.status, claimed.last_error, claimed.attempts) == (S.FAILED, "HTTP 400", 1)
    assert claimed.sent_at is None
    assert claimed.lease_until is None


def test_settle_pending_schedules_the_retry(claimed):
    at = timezone.now() + timedelta(seconds=7)
    queries.messages_settle(
        [Settlement(claimed.id, 1, S.PENDING, next_attempt_at=at, last_error="HTTP 503")]
    )
    claimed.refresh_from_db()
    assert (claimed.status, claimed.next_attempt_at, claimed.last_error) == (
        S.PENDING,
        at,
        "HTTP 503",
    )
    assert claimed.attempts == 1
    assert claimed.lease_until is None
    assert claim(claimed.mailing, now=at - SEC) == []
    assert [c.id for c in claim(claimed.mailing, now=at)] == [claimed.id]


def test_settle_expired(claimed):
    queries.messages_settle([Settlement(claimed.id, 1, S.EXPIRED, last_error="timeout")])
    claimed.refresh_from_db()
    assert (claimed.status, claimed.last_error, claimed.lease_until) == (S.EXPIRED, "timeout", None)


def test_release_uncounts_the_attempt_and_keeps_the_message_due(claimed):
    due_at = claimed.next_attempt_at
    queries.messages_settle([release(message_id=claimed.id, attempts=1)])
    claimed.refresh_from_db()
    assert (claimed.status, claimed.attempts, claimed.lease_until) == (S.PENDING, 0, None)
    assert claimed.next_attempt_at == due_at
    assert claimed.last_error == "earlier error"  # nothing was tried, so nothing new to say
    assert [c.attempts for c in claim(claimed.mailing)] == [1]


def test_settle_writes_many_outcomes_in_one_call():
    now = timezone.now()
    mailing = live_mailing()
    due_messages(mailing, 4, now=now)
    a, b, c, d = sorted(claim(mailing, now=now), key=lambda x: x.id)
    retry_at = now + HOUR

    queries.messages_settle(
        [
            Settlement(a.id, 1, S.SENT, sent_at=now),
            Settlement(b.id, 1, S.FAILED, last_error="HTTP 400"),
            Settlement(c.id, 1, S.PENDING, next_attempt_at=retry_at, last_error="HTTP 500"),
            release(message_id=d.id, attempts=1),
        ]
    )

    rows = {m.id: m for m in Message.objects.filter(mailing=mailing)}
    assert (rows[a.id].status, rows[a.id].sent_at) == (S.SENT, now)
    assert (rows[b.id].status, rows[b.id].last_error) == (S.FAILED, "HTTP 400")
    assert (rows[c.id].status, rows[c.id].next_attempt_at) == (S.PENDING, retry_at)
    assert (rows[d.id].status, rows[d.id].attempts) == (S.PENDING, 0)


def test_settle_with_a_stale_attempt_number_changes_nothing(claimed):
    """A worker whose lease ran out settles late: the message was claimed again meanwhile
    (attempt 2), so the outcome of attempt 1 must not overwrite the newer claim."""
    Message.objects.filter(id=claimed.id).update(
        status=S.PENDING, lease_until=None, next_attempt_at=timezone.now() - SEC
    )
    [again] = claim(claimed.mailing)
    assert again.attempts == 2

    queries.messages_settle(
        [
            Settlement(claimed.id, 1, S.SENT, sent_at=timezone.now()),
            release(message_id=claimed.id, attempts=1),
        ]
    )

    claimed.refresh_from_db()
    assert (claimed.status, claimed.attempts, claimed.sent_at) == (S.SENDING, 2, None)
    assert claimed.lease_until is not None


@pytest.mark.parametrize("status", [S.CANCELLED, S.EXPIRED, S.PENDING])
def test_settle_of_a_message_no_longer_sending_changes_nothing(claimed, status):
    Message.objects.filter(id=claimed.id).update(status=status, lease_until=None)
    queries.messages_settle(
        [
            Settlement(claimed.id, 1, S.FAILED, last_error="HTTP 400"),
            release(message_id=claimed.id, attempts=1),
        ]
    )
    claimed.refresh_from_db()
    assert (claimed.status, claimed.attempts, claimed.last_error) == (status, 1, "earlier error")


def test_settle_returns_how_many_messages_took_each_status():
    """Only rows still held by the same claim count: the fence drops the others."""
    now = timezone.now()
    mailing = live_mailing()
    due_messages(mailing, 3, now=now)
    a, b, c = sorted(claim(mailing, now=now), key=lambda x: x.id)
    Message.objects.filter(id=c.id).update(status=S.CANCELLED)

    changed = queries.messages_settle(
        [
            Settlement(a.id, 1, S.SENT, sent_at=now),
            Settlement(b.id, 0, S.SENT, sent_at=now),  # a stale attempt number
            Settlement(c.id, 1, S.SENT, sent_at=now),  # no longer sending
        ]
    )

    assert changed == {"sent": 1}
    assert queries.messages_settle([]) == {}


# -- counts ----------------------------------------------------------------------------------


def test_compaction_folds_deltas_and_changes_no_count():
    """PostgreSQL appends a delta row per statement; the tick folds them into one base row
    per (mailing, status). SQLite keeps base rows only."""
    mailing = MailingFactory()
    for _ in range(3):
        MessageFactory(mailing=mailing)
    Message.objects.filter(mailing=mailing).update(status="sending")
    before = counts_kept()

    queries.rollups_compact()

    assert counts_kept() == before == counts_real()
    assert not MessageCount.objects.filter(base=False).exists()
    assert MessageCount.objects.filter(mailing_id=mailing.id).count() == 2  # pending 0, sending 3


def test_compaction_folds_the_errors_without_changing_them():
    """The errors rollup too (the daily report's most frequent errors)."""
    mailing = MailingFactory()
    for message in MessageFactory.create_batch(3, mailing=mailing):
        Message.objects.filter(id=message.id).update(status="failed", last_error="HTTP 400")
    before = errors_kept()

    queries.rollups_compact()

    assert errors_kept() == before == Counter({(mailing.id, "failed", "HTTP 400"): 3})
    assert not MessageErrorMinute.objects.filter(base=False).exists()


# -- fan-out with a send window --------------------------------------------------------------


def test_fan_out_with_a_window_gives_each_timezone_its_own_first_due_time():
    """Office hours 09:00-18:00 at 12:00 UTC: open in Berlin (13:00), opening at 14:00 UTC
    in New York (09:00 there), and in Tokyo (21:00) not before the mailing ends: those expire
    at once, saying why, instead of at the end."""
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    berlin = ClientFactory.create_batch(2, timezone="Europe/Berlin")
    new_york = ClientFactory(timezone="America/New_York")
    tokyo = ClientFactory(timezone="Asia/Tokyo")
    mailing = MailingFactory(
        start_at=now - SEC,
        end_at=now + 6 * HOUR,
        send_window_start=time(9, 0),
        send_window_end=time(18, 0),
    )
    schedule = EngineSettings.load().schedule

    def first_attempt(mailing: Mailing, zone: str) -> datetime | None:
        window = mailing.send_window
        return schedule(end_at=mailing.end_at, window=window, zone=zone).next_attempt_at(now)

    fan_out = queries.mailing_fan_out(mailing_id=mailing.id, now=now, first_attempt=first_attempt)

    assert fan_out == queries.FanOut(created=4, expired=1)
    rows = {m.client_id: m for m in Message.objects.filter(mailing=mailing)}
    for client in berlin:
        assert (rows[client.id].status, rows[client.id].next_attempt_at) == (S.PENDING, now)
    assert rows[new_york.id].status == S.PENDING
    assert rows[new_york.id].next_attempt_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert rows[tokyo.id].status == S.EXPIRED
    assert rows[tokyo.id].last_error == OUTSIDE_WINDOW
    # Only what is due now is claimed.
    assert {c.client_id for c in claim(mailing, now=now)} == {c.id for c in berlin}


# -- the attempts rollup ---------------------------------------------------------------------


def test_attempts_add_up_per_minute_outcome_and_bucket_and_compact():
    minute = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    queries.attempts_record({(minute, "delivered", 3): 5, (minute, "transient", 9): 1})
    queries.attempts_record({(minute, "delivered", 3): 2})

    queries.rollups_compact()

    rows = AttemptMinute.objects.filter(number__gt=0).values_list("outcome", "bucket", "number")
    assert sorted(rows) == [("delivered", 3, 7), ("transient", 9, 1)]
    assert not AttemptMinute.objects.filter(base=False).exists()
