"""`python manage.py send_report [--date YYYY-MM-DD] [--to address ...] [--dry-run]`: render
a day's report and send it now, by hand, outside the schedule (its row is left alone)."""

import argparse
import re
from datetime import date
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.utils import timezone

from notifier.core import logging
from notifier.reports import schedule, services
from notifier.reports.settings import ReportSettings

log = logging.get_logger(__name__)


def _day(value: str) -> date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def _address(value: str) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an e-mail address") from None
    return value


class Command(BaseCommand):
    help = (
        "Render the daily report of a day (default: the last whose report is due) and send it"
        " to REPORT_RECIPIENTS or --to; --dry-run prints its text part instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--date", type=_day, help="the day, in REPORT_TIMEZONE (default: yesterday's report)"
        )
        parser.add_argument(
            "--to", nargs="+", type=_address, metavar="ADDRESS", help="instead of REPORT_RECIPIENTS"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print the subject and text part, send nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = ReportSettings.load()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        now = timezone.now()
        day: date = options["date"] or schedule.last_due_day(
            now, zone=config.zone, send_at=config.send_at
        )
        _, until = schedule.day_bounds(day, config.zone)
        if until > now:
            local = now.astimezone(config.zone)
            raise CommandError(
                f"{day.isoformat()} is not over yet in {config.zone.key}"
                f" (it is {local:%Y-%m-%d %H:%M} there): give an earlier --date"
            )
        email = services.report_render(day=day, config=config)
        if options["dry_run"]:
            self.stdout.write(f"Subject: {email.subject}\n\n{email.text}", ending="")
            return
        recipients = options["to"] or list(config.recipients)
        if not recipients:
            raise CommandError("no recipients: set REPORT_RECIPIENTS or give --to ADDRESS")
        try:
            services.deliver(email, to=recipients)
        except services.DELIVERY_ERRORS as exc:
            raise CommandError(f"not delivered: {services.describe(exc)}") from None
        log.info(
            "daily report sent by hand", report_date=day.isoformat(), recipients=len(recipients)
        )
        self.stdout.write(f"sent {email.subject!r} to {', '.join(recipients)}\n")
