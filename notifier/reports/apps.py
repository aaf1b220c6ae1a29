from typing import Any

from django.apps import AppConfig
from django.core import checks


class ReportsConfig(AppConfig):
    name = "notifier.reports"
    label = "reports"

    def ready(self) -> None:
        checks.register(check_report_settings)


def check_report_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """A bad REPORT_* value fails `manage.py check` and `migrate` (compose's first step), not
    only the reports process at its first check."""
    from django.core.exceptions import ImproperlyConfigured

    from notifier.reports.settings import ReportSettings

    try:
        ReportSettings.load()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="reports.E001")]
    return []
