"""The engine's SQL: set-based statements, the same on SQLite and PostgreSQL except for row
locking, which only PostgreSQL has (SQLite serialises writers instead), and for how a batch of
outcomes is read from its JSON. Policy (what to claim, when to retry, what a tick does) lives
elsewhere: `dispatcher`, `policy`, `tick`."""

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction

from notifier.clients.models import Client
from notifier.mailings.models import MAY_SEND_SQL, Mailing, Message
from notifier.sending.policy import Settlement

MESSAGE = Message._meta.db_table
MAILING = Mailing._meta.db_table
CLIENT = Client._meta.db_table
PENDING, SENDING = Message.Status.PENDING.value, Message.Status.SENDING.value


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _dt(value: datetime | None) -> Any:
    """A datetime as the backend stores it (SQLite: naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


# -- fan-out ---------------------------------------------------------------------------------


def mailing_fan_out(*, mailing_id: int, now: datetime) -> int | None:
    """Create the `pending` messages of a mailing whose window is open, one per matching
    client, in one set-based statement. Idempotent: a second run creates nothing and returns
    None, as does a run for a mailing that is cancelled, not yet started or already over."""
    with transaction.atomic():
        mailing = (
            Mailing.objects.select_for_update()
            .may_send(now)
            .filter(id=mailing_id, fanned_out_at=None)
            .first()
        )
        if mailing is None:
            return None
        where, params = ["TRUE"], []
        for column, values in (("operator_code", mailing.operator_codes), ("tag", mailing.tags)):
            if values:
                where.append(f"c.{column} IN ({', '.join(['%s'] * len(values))})")
                params.extend(values)
        with connection.cursor() as cursor:
            # `WHERE` before `ON CONFLICT` also keeps SQLite's parser from reading it as a join.
            cursor.execute(
                f"INSERT INTO {MESSAGE} (mailing_id, client_id, phone, status, attempts,"  # noqa: S608
                " last_error, created_at, next_attempt_at)"
                f" SELECT %s, c.id, c.phone, %s, 0, '', %s, %s FROM {CLIENT} c"
                f" WHERE {' AND '.join(where)}"
                " ON CONFLICT (mailing_id, client_id) DO NOTHING",
                [mailing.id, PENDING, _dt(now), _dt(now), *params],
            )
            created = cursor.rowcount
        mailing.fanned_out_at = now
        mailing.save(update_fields=["fanned_out_at"])
    return created


# -- claims ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveMailing:
    id: int
    text: str
    end_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    phone: str
    attempts: int
    mailing: LiveMailing
    client_id: int | None = None


def live_mailing_ids(*, now: datetime) -> list[int]:
    """Mailings whose messages may be sent now and which have some left, earliest end first."""
    return list(
        Mailing.objects.may_send(now)
        .filter(finished_at=None, fanned_out_at__isnull=False)
        .order_by("end_at", "id")
        .values_list("id", flat=True)
    )


def messages_claim(*, mailing_id: int, limit: int, now: datetime, lease: float) -> list[Claim]:
    """Claim up to `limit` due messages of one live mailing: `pending` -> `sending` with a
    lease, one attempt more. Workers never claim the same message: PostgreSQL skips rows
    another claim holds; SQLite runs one writer at a time.

    The mailing row is read under a share lock in the same transaction, so cancelling,
    deleting or shortening a mailing (which lock it for update) waits for claims in progress,
    and every claim sees the text and end time as they are at that moment."""
    lock_mailing = " FOR SHARE" if _postgres() else ""
    skip_locked = " FOR UPDATE SKIP LOCKED" if _postgres() else ""
    params = {"mailing_id": mailing_id, "now": _dt(now)}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, text, end_at FROM {MAILING} WHERE id = %(mailing_id)s"  # noqa: S608
            f" AND {MAY_SEND_SQL.format(m=MAILING)}{lock_mailing}",
            params,
        )
        row = cursor.fetchone()
        if row is None:
            return []
        mailing = LiveMailing(row[0], row[1], _as_datetime(row[2]))
        cursor.execute(
            f"UPDATE {MESSAGE} SET status = %(sending)s, lease_until = %(lease_until)s,"  # noqa: S608
            " attempts = attempts + 1"
            f" WHERE id IN (SELECT id FROM {MESSAGE} WHERE mailing_id = %(mailing_id)s"
            " AND status = %(pending)s AND next_attempt_at <= %(now)s AND client_id IS NOT NULL"
            f" ORDER BY next_attempt_at LIMIT %(limit)s{skip_locked})"
            " RETURNING id, phone, attempts, client_id",
            {
                **params,
                "sending": SENDING,
                "pending": PENDING,
                "lease_until": _dt(now + timedelta(seconds=lease)),
                "limit": limit,
            },
        )
        return [
            Claim(id_, phone, attempts, mailing, client_id)
            for id_, phone, attempts, client_id in cursor.fetchall()
        ]


def _as_datetime(value: object) -> datetime:
    """A datetime read by a raw query: SQLite gives naive UTC (or text), PostgreSQL aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- settlements -----------------------------------------------------------------------------


# The columns of a settlement, in the order a batch carries them, with their types.
SETTLED = (
    ("id", "bigint"),
    ("attempts", "int"),
    ("status", "varchar"),
    ("sent_at", "timestamptz"),
    ("next_attempt_at", "timestamptz"),
    ("last_error", "text"),
    ("counted", "int"),
)


def messages_settle(settlements: Sequence[Settlement]) -> Counter[str]:
    """Write the outcomes of many attempts in one statement; returns how many rows took each
    status. Each row is fenced by its claim (still `sending`, same attempt number), so a late
    worker never overwrites a newer claim or a cancellation."""
    if not settlements:
        return Counter()

    # The whole batch travels as one JSON parameter: encoding it is one C call, and the
    # statement is the same for any number of rows (psycopg adapted arrays element by element
    # in Python, and SQLite limits the number of parameters).
    def text(value: datetime | None) -> str | None:  # as the backend reads a datetime
        return None if value is None else str(_dt(value))

    batch = json.dumps(
        [
            [
                s.id,
                s.attempts,
                s.status,
                text(s.sent_at),
                text(s.next_attempt_at),
                s.last_error,
                int(s.attempt_counted),
            ]
            for s in settlements
        ]
    )
    if _postgres():
        fields = ", ".join(f"(r->>{i})::{kind} AS {name}" for i, (name, kind) in enumerate(SETTLED))
        source = f"(SELECT {fields} FROM json_array_elements(%s::json) AS r) AS v"  # noqa: S608
    else:
        fields = ", ".join(
            f"json_extract(value, '$[{i}]') AS {name}" for i, (name, _) in enumerate(SETTLED)
        )
        source = f"(SELECT {fields} FROM json_each(%s)) AS v"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {MESSAGE} SET status = v.status, sent_at = v.sent_at,"  # noqa: S608
            f" next_attempt_at = COALESCE(v.next_attempt_at, {MESSAGE}.next_attempt_at),"
            " last_error = CASE WHEN v.counted = 1"
            f" THEN v.last_error ELSE {MESSAGE}.last_error END,"
            f" attempts = {MESSAGE}.attempts + v.counted - 1, lease_until = NULL"
            f" FROM {source}"
            f" WHERE {MESSAGE}.id = v.id AND {MESSAGE}.attempts = v.attempts"
            f" AND {MESSAGE}.status = %s RETURNING {MESSAGE}.status",
            [batch, SENDING],
        )
        return Counter(status for (status,) in cursor.fetchall())


# -- counts ----------------------------------------------------------------------------------


def message_counts_compact() -> int:
    """Fold the delta rows the count triggers appended into the base rows (PostgreSQL; SQLite
    keeps base rows only). Concurrent runs are safe. Returns the rows folded."""
    if not _postgres():
        return 0
    with connection.cursor() as cursor:
        # Base rows are locked in key order: two compactions cannot deadlock.
        cursor.execute(
            "WITH moved AS (DELETE FROM mailings_messagecount WHERE NOT base"
            " RETURNING mailing_id, status, number)"
            " INSERT INTO mailings_messagecount (mailing_id, status, number, base)"
            " SELECT mailing_id, status, sum(number), true FROM moved"
            " GROUP BY mailing_id, status ORDER BY mailing_id, status"
            " ON CONFLICT (mailing_id, status) WHERE base"
            " DO UPDATE SET number = mailings_messagecount.number + EXCLUDED.number"
        )
        return cursor.rowcount
