from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple, TypedDict

from django.db.models import Q, QuerySet, Sum

from notifier.clients.models import Client
from notifier.mailings.models import (
    Mailing,
    Message,
    MessageCount,
    MessageErrorMinute,
    MessageMinute,
    may_send_q,
)


class MessageCounts(TypedDict):
    total: int
    by_status: dict[str, int]


class ErrorCount(NamedTuple):
    status: str  # failed or expired
    error: str
    messages: int
    mailings: int  # how many mailings had it


def mailing_status_q(status: str, now: datetime) -> Q:
    """The SQL twin of `Mailing.status_at`, for filtering lists by status."""
    live = Q(cancelled_at__isnull=True)
    unfinished = live & Q(finished_at__isnull=True) & Q(end_at__gt=now)
    return {
        Mailing.Status.CANCELLED: ~live,
        Mailing.Status.FINISHED: live & (Q(finished_at__isnull=False) | Q(end_at__lte=now)),
        Mailing.Status.RUNNING: may_send_q(now) & Q(finished_at__isnull=True),
        Mailing.Status.SCHEDULED: unfinished & Q(start_at__gt=now),
    }[Mailing.Status(status)]


def empty_counts() -> MessageCounts:
    return {"total": 0, "by_status": {status.value: 0 for status in Message.Status}}


def _add(counts: MessageCounts, status: str, n: int) -> None:
    counts["by_status"][status] += n
    counts["total"] += n


def message_counts_by_mailing(*, mailing_ids: Iterable[int]) -> dict[int, MessageCounts]:
    """Counts by status for each given mailing, every status present, in one query."""
    ids = list(mailing_ids)
    result = {mailing_id: empty_counts() for mailing_id in ids}
    rows = (
        MessageCount.objects.filter(mailing_id__in=ids)
        .values_list("mailing_id", "status")
        .annotate(n=Sum("number"))
        .order_by()
    )
    for mailing_id, status, n in rows:
        _add(result[mailing_id], status, n)
    return result


def message_counts_total(*, mailings: QuerySet[Mailing] | None = None) -> MessageCounts:
    """Counts by status over every message of the given mailings (of all, by default)."""
    counts = empty_counts()
    rows = MessageCount.objects.all()
    if mailings is not None:
        rows = rows.filter(mailing_id__in=mailings.order_by().values("id"))
    for status, n in rows.values_list("status").annotate(n=Sum("number")).order_by():
        _add(counts, status, n)
    return counts


def mailing_audiences(*, mailings: Iterable[Mailing]) -> dict[int, int | None]:
    """How many clients each mailing reached when it started (one message each, created at
    its fan-out), or None before that: read from the statistics, in at most one query."""
    mailings = list(mailings)
    started = [m.id for m in mailings if m.fanned_out_at is not None]
    counts = message_counts_by_mailing(mailing_ids=started) if started else {}
    return {m.id: counts[m.id]["total"] if m.id in counts else None for m in mailings}


def message_list(
    *, mailing: Mailing | None = None, client: Client | None = None
) -> QuerySet[Message]:
    """The messages of a mailing, or to a client, in the order they were created."""
    messages = Message.objects.all()
    if mailing is not None:
        messages = messages.filter(mailing=mailing)
    if client is not None:
        messages = messages.filter(client=client)
    return messages.order_by("id")


def message_outcomes_between(
    *, since: datetime, until: datetime, mailing_ids: Iterable[int] | None = None
) -> dict[int, dict[str, int]]:
    """Messages that reached each final status in `[since, until)` (whole minutes), by
    mailing, from the per-minute rollup: `{mailing_id: {status: n}}`, every final status
    present."""
    rows = MessageMinute.objects.filter(minute__gte=since, minute__lt=until)
    if mailing_ids is not None:
        rows = rows.filter(mailing_id__in=list(mailing_ids))
    result: dict[int, dict[str, int]] = {}
    for mailing_id, status, n in (
        rows.values_list("mailing_id", "status").annotate(n=Sum("number")).order_by()
    ):
        counts = result.setdefault(mailing_id, dict.fromkeys(Message.FINAL_STATUSES, 0))
        counts[status] += n
    return result


def message_outcomes_per_minute(
    *, since: datetime, until: datetime, mailing_id: int | None = None
) -> list[tuple[datetime, str, int]]:
    """(minute, final status, messages) for each minute of `[since, until)` that had any,
    in time order, over all mailings or one."""
    rows = MessageMinute.objects.filter(minute__gte=since, minute__lt=until)
    if mailing_id is not None:
        rows = rows.filter(mailing_id=mailing_id)
    return list(
        rows.values_list("minute", "status").annotate(n=Sum("number")).order_by("minute", "status")
    )


def message_errors_between(*, since: datetime, until: datetime, limit: int) -> list[ErrorCount]:
    """The `limit` most frequent (status, error) pairs of the messages that ended `failed` or
    `expired` in `[since, until)` (whole minutes), over all mailings, most messages first,
    from the errors rollup."""
    # Summed per mailing in the database, then per error here: a hash aggregate and a few
    # thousand rows, where COUNT(DISTINCT mailing_id) sorts every row of the day.
    rows = (
        MessageErrorMinute.objects.filter(minute__gte=since, minute__lt=until)
        .values_list("status", "error", "mailing_id")
        .annotate(n=Sum("number"))
        .order_by()
    )
    totals: dict[tuple[str, str], list[int]] = {}
    for status, error, _, n in rows:
        if n:
            total = totals.setdefault((status, error), [0, 0])
            total[0] += n
            total[1] += 1
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    return [ErrorCount(status, error, n, mailings) for (status, error), (n, mailings) in ranked][
        :limit
    ]


def message_outcomes_until(
    *, until: datetime, mailing_ids: Iterable[int]
) -> dict[int, dict[str, int]]:
    """Messages of each given mailing that had reached each final status before `until`
    (whole minutes), from the per-minute rollup: `{mailing_id: {status: n}}`, every final
    status present for every mailing given."""
    ids = list(mailing_ids)
    finals = [status.value for status in Message.FINAL_STATUSES]
    result = {mailing_id: dict.fromkeys(finals, 0) for mailing_id in ids}
    rows = MessageMinute.objects.filter(mailing_id__in=ids, minute__lt=until)
    for mailing_id, status, n in (
        rows.values_list("mailing_id", "status").annotate(n=Sum("number")).order_by()
    ):
        result[mailing_id][status] += n
    return result
