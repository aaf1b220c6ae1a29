"""The reports queue's tasks, run by the `reports` process only (bin/reports): a periodic
check of what is due, and one delivery attempt at a time."""

from datetime import date

from celery import shared_task
from django.utils import timezone

from notifier.reports import services
from notifier.reports.settings import ReportSettings


@shared_task(name="reports.check", ignore_result=True)
def check() -> None:
    """Every minute (beat): claim the reports that fell due, start an attempt of each due."""
    for day in services.reports_check(now=timezone.now(), config=ReportSettings.load()):
        send.delay(day.isoformat())


@shared_task(
    name="reports.send",
    ignore_result=True,
    soft_time_limit=services.SEND_SOFT_TIME_LIMIT,
    time_limit=services.SEND_TIME_LIMIT,
)
def send(day: str) -> None:
    """One delivery attempt of a day's report; a failure schedules the next after its
    backoff (the check would find it too, should this wake-up be lost)."""
    attempt = services.report_attempt(
        day=date.fromisoformat(day), now=timezone.now(), config=ReportSettings.load()
    )
    if attempt is not None and attempt.retry_in is not None:
        send.apply_async((day,), countdown=attempt.retry_in)
