"""The engine's SQL: set-based statements, the same on SQLite and PostgreSQL except for row
locking, which only PostgreSQL has (SQLite serialises writers instead), and for how a batch of
outcomes is read from its JSON. Policy (what to claim, when to retry, what a tick does) lives
elsewhere: `dispatcher`, `policy`, `tick`."""

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction

from notifier.clients.models import Client
from notifier.mailings.models import MAY_SEND_SQL, Mailing, Message
from notifier.mailings.windows import SendWindow
from notifier.sending.models import SendLoop
from notifier.sending.policy import OUTSIDE_WINDOW, Settlement

MESSAGE = Message._meta.db_table
MAILING = Mailing._meta.db_table
CLIENT = Client._meta.db_table
PENDING, SENDING = Message.Status.PENDING.value, Message.Status.SENDING.value
EXPIRED = Message.Status.EXPIRED.value


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _dt(value: datetime | None) -> Any:
    """A datetime as the backend stores it (SQLite: naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _text(value: datetime | None) -> str | None:
    """A datetime as the backend reads it from text (in a JSON parameter)."""
    return None if value is None else str(_dt(value))


def _json_rows(columns: Sequence[tuple[str, str]], alias: str) -> str:
    """A table of the rows in one JSON parameter (`%s`, an array of arrays), with these
    (name, PostgreSQL type) columns. A whole batch travels so: encoding it is one C call, and
    the statement is the same for any number of rows (psycopg adapted arrays element by
    element in Python, and SQLite limits the number of parameters)."""
    if _postgres():
        fields = ", ".join(f"(r->>{i})::{kind} AS {name}" for i, (name, kind) in enumerate(columns))
        return f"(SELECT {fields} FROM json_array_elements(%s::json) AS r) AS {alias}"
    fields = ", ".join(
        f"json_extract(value, '$[{i}]') AS {name}" for i, (name, _) in enumerate(columns)
    )
    return f"(SELECT {fields} FROM json_each(%s)) AS {alias}"


# -- fan-out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanOut:
    created: int  # messages, pending or expired at once
    expired: int  # of which their send window does not open before the end


# When a message of the mailing may first go, for a client in the given timezone (None: never
# before the end); asked once per timezone among the matching clients, not per client.
FirstAttempt = Callable[[Mailing, str], datetime | None]


def mailing_fan_out(
    *, mailing_id: int, now: datetime, first_attempt: FirstAttempt | None = None
) -> FanOut | None:
    """Create the messages of a mailing whose window is open, one per matching client, in
    set-based statements: `pending`, due now or (with a send window) at its next opening in
    the client's timezone, or `expired` when that opening comes too late. Idempotent: a second
    run creates nothing and returns None, as does a run for a mailing that is cancelled, not
    yet started or already over."""
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
        audience = Audience(" AND ".join(where), params)
        with connection.cursor() as cursor:
            if mailing.send_window is None or first_attempt is None:
                created = audience.insert(cursor, mailing.id, "%s", "''", "%s", [PENDING, now, now])
                fan_out = FanOut(created, 0)
            else:
                fan_out = _fan_out_by_zone(cursor, mailing, audience, now, first_attempt)
        mailing.fanned_out_at = now
        mailing.save(update_fields=["fanned_out_at"])
    return fan_out


@dataclass(frozen=True)
class Audience:
    """The clients a mailing reaches (`where` over the client table as `c`)."""

    where: str
    params: list[Any]

    def insert(
        self,
        cursor: Any,
        mailing_id: int,
        status: str,
        last_error: str,
        next_attempt_at: str,
        values: list[Any],
        *,
        join: str = "",
    ) -> int:
        """One message per client of the audience (`join`ed to more columns, whose
        parameters come first in `values`); returns how many were created."""
        # `WHERE` before `ON CONFLICT` also keeps SQLite's parser from reading it as a join.
        cursor.execute(
            f"INSERT INTO {MESSAGE} (mailing_id, client_id, phone, status, attempts,"
            " last_error, created_at, next_attempt_at)"
            f" SELECT %s, c.id, c.phone, {status}, 0, {last_error}, %s, {next_attempt_at}"
            f" FROM {CLIENT} c{join} WHERE {self.where}"
            " ON CONFLICT (mailing_id, client_id) DO NOTHING",
            [mailing_id, *[_dt(v) if isinstance(v, datetime) else v for v in values], *self.params],
        )
        return int(cursor.rowcount)


def _fan_out_by_zone(
    cursor: Any, mailing: Mailing, audience: Audience, now: datetime, first_attempt: FirstAttempt
) -> FanOut:
    """With a send window: one first due time per timezone among the clients."""
    cursor.execute(
        f"SELECT DISTINCT c.timezone FROM {CLIENT} c WHERE {audience.where}", audience.params
    )
    due = {zone: first_attempt(mailing, zone) for (zone,) in cursor.fetchall()}
    opens = json.dumps([[zone, _text(at)] for zone, at in due.items() if at is not None])
    closed = json.dumps([[zone] for zone, at in due.items() if at is None])
    on_zone = " ON z.zone = c.timezone"
    pending = audience.insert(
        cursor,
        mailing.id,
        "%s",
        "''",
        "z.at",
        [PENDING, now, opens],
        join=f" JOIN {_json_rows(ZONE_OPENS, 'z')}{on_zone}",
    )
    expired = audience.insert(
        cursor,
        mailing.id,
        "%s",
        "%s",
        "%s",
        [EXPIRED, OUTSIDE_WINDOW, now, now, closed],
        join=f" JOIN {_json_rows(ZONE_OPENS[:1], 'z')}{on_zone}",
    )
    return FanOut(pending + expired, expired)


# -- claims ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveMailing:
    id: int
    text: str
    end_at: datetime
    window: SendWindow | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    phone: str
    attempts: int
    mailing: LiveMailing
    client_id: int | None = None
    timezone: str | None = None  # the client's, when its mailing has a send window


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
            "SELECT id, text, end_at, send_window_start, send_window_end"
            f" FROM {MAILING} WHERE id = %(mailing_id)s"
            f" AND {MAY_SEND_SQL.format(m=MAILING)}{lock_mailing}",
            params,
        )
        row = cursor.fetchone()
        if row is None:
            return []
        window = None if row[3] is None else SendWindow(_as_time(row[3]), _as_time(row[4]))
        mailing = LiveMailing(row[0], row[1], _as_datetime(row[2]), window)
        cursor.execute(
            f"UPDATE {MESSAGE} SET status = %(sending)s, lease_until = %(lease_until)s,"
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
        rows = cursor.fetchall()
        zones: dict[int, str] = {}
        if window is not None and rows:
            # The window is in each client's local time: the claim re-checks it.
            ids = [client_id for *_, client_id in rows]
            zones = dict(Client.objects.filter(id__in=ids).values_list("id", "timezone"))
        return [
            Claim(id_, phone, attempts, mailing, client_id, zones.get(client_id or 0))
            for id_, phone, attempts, client_id in rows
        ]


def _as_time(value: object) -> time:
    """A time read by a raw query: SQLite gives text."""
    return time.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


def _as_datetime(value: object) -> datetime:
    """A datetime read by a raw query: SQLite gives naive UTC (or text), PostgreSQL aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- settlements -----------------------------------------------------------------------------


# The columns of a timezone's first due time at fan-out (the zone alone for those closed).
ZONE_OPENS = (("zone", "text"), ("at", "timestamptz"))
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

    batch = json.dumps(
        [
            [
                s.id,
                s.attempts,
                s.status,
                _text(s.sent_at),
                _text(s.next_attempt_at),
                s.last_error,
                int(s.attempt_counted),
            ]
            for s in settlements
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {MESSAGE} SET status = v.status, sent_at = v.sent_at,"
            f" next_attempt_at = COALESCE(v.next_attempt_at, {MESSAGE}.next_attempt_at),"
            " last_error = CASE WHEN v.counted = 1 OR v.last_error <> ''"
            f" THEN v.last_error ELSE {MESSAGE}.last_error END,"
            f" attempts = {MESSAGE}.attempts + v.counted - 1, lease_until = NULL"
            f" FROM {_json_rows(SETTLED, 'v')}"
            f" WHERE {MESSAGE}.id = v.id AND {MESSAGE}.attempts = v.attempts"
            f" AND {MESSAGE}.status = %s RETURNING {MESSAGE}.status",
            [batch, SENDING],
        )
        return Counter(status for (status,) in cursor.fetchall())


# -- rollups --------------------------------------------------------------------------------

# The tables whose rows add up (delta rows appended on PostgreSQL, one base row per key), and
# their keys.
ROLLUPS = {
    "mailings_messagecount": ("mailing_id", "status"),
    "mailings_messageminute": ("mailing_id", "minute", "status"),
    "mailings_messageerrorminute": ("mailing_id", "minute", "status", "error"),
    "sending_attemptminute": ("minute", "outcome", "bucket"),
}
ATTEMPTS = (("minute", "timestamptz"), ("outcome", "varchar"), ("bucket", "int"), ("n", "int"))


def rollups_compact() -> int:
    """Fold the delta rows appended to each rollup into its base rows (PostgreSQL; SQLite
    keeps base rows only). Concurrent runs are safe. Returns the rows folded."""
    if not _postgres():
        return 0
    folded = 0
    with connection.cursor() as cursor:
        for table, key in ROLLUPS.items():
            columns = ", ".join(key)
            # Base rows are locked in key order: two compactions cannot deadlock.
            cursor.execute(
                f"WITH moved AS (DELETE FROM {table} WHERE NOT base RETURNING {columns}, number)"
                f" INSERT INTO {table} ({columns}, number, base)"
                f" SELECT {columns}, sum(number), true FROM moved"
                f" GROUP BY {columns} ORDER BY {columns}"
                f" ON CONFLICT ({columns}) WHERE base"
                f" DO UPDATE SET number = {table}.number + EXCLUDED.number"
            )
            folded += cursor.rowcount
    return folded


def attempts_record(counts: dict[tuple[datetime, str, int], int]) -> None:
    """Add requests to the external API, counted by (minute, outcome, latency bucket), to
    the attempts rollup: appended as delta rows on PostgreSQL (no lock another worker waits
    for), added to the base rows on SQLite (one writer at a time anyway)."""
    if not counts:
        return
    rows = json.dumps(
        [[_text(m), outcome, bucket, n] for (m, outcome, bucket), n in counts.items()]
    )
    table, key = "sending_attemptminute", ", ".join(ROLLUPS["sending_attemptminute"])
    insert = f"INSERT INTO {table} ({key}, number, base) SELECT minute, outcome, bucket, n"
    with connection.cursor() as cursor:
        if _postgres():
            cursor.execute(f"{insert}, false FROM {_json_rows(ATTEMPTS, 'r')}", [rows])
        else:
            cursor.execute(
                f"{insert}, true FROM {_json_rows(ATTEMPTS, 'r')} WHERE true"
                f" ON CONFLICT ({key}) WHERE base DO UPDATE SET number = number + EXCLUDED.number",
                [rows],
            )


def send_loop_report(*, name: str, in_flight: int, in_flight_limit: int, held_back: str) -> None:
    SendLoop.objects.update_or_create(
        name=name,
        defaults={
            "seen_at": datetime.now(UTC),
            "in_flight": in_flight,
            "in_flight_limit": in_flight_limit,
            "held_back": held_back,
        },
    )
