"""The daily report's writes: which reports are due (claimed once each, from the database
alone), and their delivery, retried with backoff, its outcome recorded on the report's row."""

import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q

from notifier.core import logging, metrics
from notifier.reports import schedule
from notifier.reports.models import Report, ReportClock
from notifier.reports.rendering import RenderedReport, render
from notifier.reports.selectors import daily_report
from notifier.reports.settings import CATCH_UP_DAYS, ReportSettings

log = logging.get_logger(__name__)
S = Report.Status
# What a delivery may raise: the server's refusals, the network's failures and timeouts, and
# the task's time limit.
DELIVERY_ERRORS = (smtplib.SMTPException, OSError, SoftTimeLimitExceeded)
# A delivery is a few SMTP exchanges, each bounded by EMAIL_TIMEOUT; the task's time limits
# (enforced by the reports process's prefork pool) stop one that hangs regardless. An attempt
# is its process's for longer than that, so that a live attempt is never started again
# beside itself.
SEND_SOFT_TIME_LIMIT = 120
SEND_TIME_LIMIT = 150
LEASE = timedelta(seconds=SEND_TIME_LIMIT + 30)
RETRY_MAX = timedelta(hours=1)
_redactor = logging.Redactor(settings.LOG_SECRETS)


def reports_check(*, now: datetime, config: ReportSettings) -> list[date]:
    """Claim the report of every day that fell due since the service first checked (this
    call, the first time), once: inserting its row, unique per date, is the claim. Days due
    more than `CATCH_UP_DAYS` ago, or due while there were no recipients, are recorded as
    skipped. Returns the days whose report is due for an attempt now."""
    clock, _ = ReportClock.objects.get_or_create(id=1, defaults={"first_check_at": now})
    zone, send_at = config.zone, config.send_at
    last = schedule.last_due_day(now, zone=zone, send_at=send_at)
    first = schedule.first_day_due_from(clock.first_check_at, zone=zone, send_at=send_at)
    latest = Report.objects.order_by("-date").values_list("date", flat=True).first()
    if latest is not None:
        first = max(first, latest + timedelta(days=1))
    for day in schedule.days(first, last) if first <= last else []:
        _claim(day, now=now, config=config, late=(last - day).days >= CATCH_UP_DAYS)
    _fail_abandoned(now=now, config=config)
    return list(
        Report.objects.filter(_attempt_due(now)).order_by("date").values_list("date", flat=True)
    )


def _claim(day: date, *, now: datetime, config: ReportSettings, late: bool) -> None:
    due_at = schedule.due_at(day, zone=config.zone, send_at=config.send_at)
    if late:
        status, reason = S.SKIPPED, f"fell due more than {CATCH_UP_DAYS} days ago"
    elif not config.recipients:
        status, reason = S.SKIPPED, "no recipients: REPORT_RECIPIENTS is empty"
    else:
        status, reason = S.PENDING, ""
    _, created = Report.objects.get_or_create(
        date=day,
        defaults={
            "status": status,
            "reason": reason,
            "due_at": due_at,
            "recipients": list(config.recipients),
            "next_attempt_at": now if status == S.PENDING else None,
        },
    )
    if not created:
        return  # another check claimed it first
    # One check may claim several days: each line names its own (nothing bound for the task).
    when = {"report_date": day.isoformat(), "due_at": due_at}
    if status == S.SKIPPED:
        metrics.record_report(S.SKIPPED)
        log.warning("daily report skipped", reason=reason, **when)
    else:
        log.info("daily report due", recipients=len(config.recipients), **when)


def _attempt_due(now: datetime) -> Q:
    """Pending, due, and not under way in a live process."""
    return Q(status=S.PENDING, next_attempt_at__lte=now) & (
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )


def _fail_abandoned(*, now: datetime, config: ReportSettings) -> None:
    """A last attempt whose process died (or ran out of time) never recorded its outcome."""
    abandoned = Report.objects.filter(_attempt_due(now), attempts__gte=config.max_attempts)
    for day in abandoned.values_list("date", flat=True):
        reason = f"the last of {config.max_attempts} attempts did not finish"
        if abandoned.filter(date=day).update(status=S.FAILED, reason=reason, lease_until=None):
            metrics.record_report(S.FAILED)
            log.error("daily report failed", report_date=day.isoformat(), reason=reason)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt: `retry_in` seconds until the next, if any."""

    sent: bool
    retry_in: float | None = None


def report_attempt(*, day: date, now: datetime, config: ReportSettings) -> Attempt | None:
    """One delivery attempt of a claimed report, if it is due and no other process has it
    (None otherwise): render from the rollups, send to its recipients, record the outcome."""
    logging.bind(report_date=day.isoformat())
    taken = Report.objects.filter(
        _attempt_due(now), date=day, attempts__lt=config.max_attempts
    ).update(attempts=F("attempts") + 1, lease_until=now + LEASE)
    if not taken:
        return None
    report = Report.objects.get(date=day)
    try:
        email = report_render(day=day, config=config)
        deliver(email, to=report.recipients)
    except DELIVERY_ERRORS as exc:
        return _failed(report, error=describe(exc), now=now, config=config)
    Report.objects.filter(id=report.id).update(
        status=S.SENT, sent_at=now, lease_until=None, next_attempt_at=None, reason=""
    )
    metrics.record_report(S.SENT)
    log.info(
        "daily report sent",
        subject=email.subject,
        recipients=len(report.recipients),
        attempt=report.attempts,
    )
    return Attempt(sent=True)


def _failed(report: Report, *, error: str, now: datetime, config: ReportSettings) -> Attempt:
    if report.attempts >= config.max_attempts:
        Report.objects.filter(id=report.id).update(
            status=S.FAILED, reason=error, lease_until=None, next_attempt_at=None
        )
        metrics.record_report(S.FAILED)
        log.error("daily report failed: no attempt left", error=error, attempts=report.attempts)
        return Attempt(sent=False)
    delay = min(timedelta(seconds=config.retry_seconds * 2 ** (report.attempts - 1)), RETRY_MAX)
    Report.objects.filter(id=report.id).update(
        reason=error, lease_until=None, next_attempt_at=now + delay
    )
    log.warning(
        "daily report not delivered: retrying",
        error=error,
        attempt=report.attempts,
        max_attempts=config.max_attempts,
        retry_in_seconds=delay.total_seconds(),
    )
    return Attempt(sent=False, retry_in=delay.total_seconds())


def report_render(*, day: date, config: ReportSettings) -> RenderedReport:
    return render(daily_report(day=day, zone=config.zone), public_url=config.public_url)


def deliver(email: RenderedReport, *, to: Sequence[str]) -> None:
    """Send through the configured backend (EMAIL_URL), each SMTP operation bounded by
    EMAIL_TIMEOUT; raises what the server or the network said."""
    message = EmailMultiAlternatives(subject=email.subject, body=email.text, to=list(to))
    message.attach_alternative(email.html, "text/html")
    message.send(fail_silently=False)


def describe(exc: BaseException) -> str:
    """An error as logged and stored: its type and message, any known secret blanked (an
    SMTP server may echo what it was sent)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return _redactor.scrub(text)[:500]
