"""The counts /metrics reads from the database at each scrape: one GROUP BY each, bounded."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Case, CharField, Count, Value, When

from notifier.mailings.models import Mailing, Message
from notifier.mailings.selectors import mailing_status_q, message_counts_total


@dataclass(frozen=True)
class QueueSnapshot:
    pending: dict[str, int]  # {"now": due now, "later": waiting out a backoff}
    messages: dict[str, int]  # every message status, zeros included
    mailings: dict[str, int]  # every mailing status, zeros included


def queue_snapshot(*, now: datetime, timeout: float) -> QueueSnapshot:
    """The queue and the counts by status, read within `timeout` seconds on PostgreSQL
    (a `DatabaseError` after that)."""
    with _within(timeout):
        return QueueSnapshot(
            pending=message_pending_counts(now=now),
            messages=dict(message_counts_total()["by_status"]),
            mailings=mailing_counts_by_status(now=now),
        )


def message_pending_counts(*, now: datetime) -> dict[str, int]:
    """Pending messages of mailings that may still send them, due now or later."""
    due = Case(
        When(next_attempt_at__lte=now, then=Value("now")),
        default=Value("later"),
        output_field=CharField(),
    )
    rows = (
        Message.objects.filter(
            status=Message.Status.PENDING,
            client__isnull=False,
            mailing__cancelled_at=None,
            mailing__end_at__gt=now,
        )
        .annotate(due=due)
        .values_list("due")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {"now": 0, "later": 0} | dict(rows)


def mailing_counts_by_status(*, now: datetime) -> dict[str, int]:
    """Mailings by the status the API shows (`Mailing.status_at`), computed in SQL."""
    status = Case(
        *(When(mailing_status_q(s, now), then=Value(s.value)) for s in Mailing.Status),
        output_field=CharField(),
    )
    rows = Mailing.objects.annotate(s=status).values_list("s").annotate(n=Count("id")).order_by()
    return {s.value: 0 for s in Mailing.Status} | dict(rows)


@contextmanager
def _within(timeout: float) -> Iterator[None]:
    if connection.vendor != "postgresql":
        # SQLite has no statement timeout; in WAL mode its readers never wait for a writer.
        # (A transaction here would: it begins IMMEDIATE, taking the write lock.)
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)", [str(int(timeout * 1000))]
            )
        yield
        # Nothing was written: rolling back also ends the timeout inside an outer transaction.
        transaction.set_rollback(True)
