"""The numbers of a day's report, read from the rollups and the counts, never the messages:
the outcomes per (mailing, minute), the errors per (mailing, minute, error), the requests to
the API per minute, and the counts per mailing."""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.db.models import F, Q

from notifier.mailings.models import Mailing, Message
from notifier.mailings.selectors import (
    ErrorCount,
    message_counts_by_mailing,
    message_errors_between,
    message_outcomes_between,
    message_outcomes_until,
)
from notifier.reports.schedule import day_bounds
from notifier.sending.selectors import ApiHealth, api_health

TOP_ERRORS = 10
FINAL = [str(status) for status in Message.FINAL_STATUSES]


@dataclass(frozen=True)
class Outcomes:
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0
    pending: int | None = None  # still pending or in flight; None: not known (deleted)

    @classmethod
    def of(cls, counts: dict[str, int], pending: int | None = None) -> "Outcomes":
        return cls(**{status: counts.get(status, 0) for status in FINAL}, pending=pending)

    def __add__(self, other: "Outcomes") -> "Outcomes":
        pending = (
            None
            if self.pending is None and other.pending is None
            else (self.pending or 0) + (other.pending or 0)
        )
        return Outcomes(
            self.sent + other.sent,
            self.failed + other.failed,
            self.expired + other.expired,
            self.cancelled + other.cancelled,
            pending,
        )

    @property
    def not_sent(self) -> int:
        return self.failed + self.expired + self.cancelled

    @property
    def delivery_rate(self) -> float | None:
        """Sent out of the messages the engine settled: sent, failed or expired. Cancelled
        ones were stopped by an operator, not lost."""
        settled = self.sent + self.failed + self.expired
        return self.sent / settled if settled else None


@dataclass(frozen=True)
class MailingLine:
    id: int
    text: str
    state: str  # at the end of the day: running, finished, cancelled; or deleted since
    start_at: datetime | None
    end_at: datetime | None
    day: Outcomes  # what reached each final status during the day
    overall: Outcomes  # where the whole mailing stood at the end of the day


@dataclass(frozen=True)
class DailyReport:
    day: date
    zone: ZoneInfo
    since: datetime  # the day in UTC: [since, until)
    until: datetime
    mailings: list[MailingLine]
    errors: list[ErrorCount]
    api: ApiHealth

    @property
    def day_totals(self) -> Outcomes:
        return sum((m.day for m in self.mailings), Outcomes())

    @property
    def overall_totals(self) -> Outcomes:
        return sum((m.overall for m in self.mailings), Outcomes())


def ran_during_q(since: datetime, until: datetime) -> Q:
    """Mailings that were running at some moment of `[since, until)`: the window overlaps
    it, and they were neither finished nor cancelled (before starting) by its start."""
    not_cancelled = Q(cancelled_at__isnull=True) | (
        Q(cancelled_at__gt=since) & Q(cancelled_at__gt=F("start_at"))
    )
    not_finished = Q(finished_at__isnull=True) | Q(finished_at__gt=since)
    return Q(start_at__lt=until, end_at__gt=since) & not_cancelled & not_finished


def state_at(mailing: Mailing, moment: datetime) -> str:
    if mailing.cancelled_at is not None and mailing.cancelled_at <= moment:
        return "cancelled"
    if (mailing.finished_at is not None and mailing.finished_at <= moment) or (
        mailing.end_at <= moment
    ):
        return "finished"
    return "running"


def daily_report(*, day: date, zone: ZoneInfo) -> DailyReport:
    """Every mailing that ran during `day` (in `zone`) or had messages settle in it, with
    its outcomes that day and overall at the day's end; the day's most frequent errors and
    the external API's health that day. A few grouped reads of the rollups, whatever the
    number of messages."""
    since, until = day_bounds(day, zone)
    outcomes = message_outcomes_between(since=since, until=until)
    mailings = {
        m.id: m
        for m in Mailing.objects.filter(Q(id__in=list(outcomes)) | ran_during_q(since, until))
        .only("id", "text", "start_at", "end_at", "finished_at", "cancelled_at")
        .order_by()
    }
    ids = sorted(set(outcomes) | set(mailings))
    # Where each stood at the day's end: what it had settled before the day (a few rows for
    # the mailings that ran days before), plus the day's own.
    before_end = message_outcomes_until(until=since, mailing_ids=ids)
    for mailing_id, day_counts in outcomes.items():
        for status, n in day_counts.items():
            before_end[mailing_id][status] += n
    counts = message_counts_by_mailing(mailing_ids=mailings)
    lines = []
    for mailing_id in ids:
        mailing = mailings.get(mailing_id)
        ended = Outcomes.of(before_end[mailing_id])
        if mailing is None:
            # Deleted since: its outcomes outlive it, its messages (and so its total) do not.
            overall, state, text, start_at, end_at = ended, "deleted", "", None, None
        else:
            settled = ended.sent + ended.failed + ended.expired + ended.cancelled
            pending = max(0, counts[mailing_id]["total"] - settled)
            overall = Outcomes.of(before_end[mailing_id], pending=pending)
            state, text = state_at(mailing, until), mailing.text
            start_at, end_at = mailing.start_at, mailing.end_at
        day_outcomes = Outcomes.of(outcomes.get(mailing_id, {}))
        lines.append(MailingLine(mailing_id, text, state, start_at, end_at, day_outcomes, overall))
    return DailyReport(
        day=day,
        zone=zone,
        since=since,
        until=until,
        mailings=lines,
        errors=message_errors_between(since=since, until=until, limit=TOP_ERRORS),
        api=api_health(since=since, until=until),
    )
