from collections.abc import Iterator
from datetime import time
from zoneinfo import ZoneInfo

import pytest
from celery import current_app

from notifier.reports.settings import ReportSettings
from notifier.testing.smtp import SmtpServer

SMTP_USER = "reports"
# Distinctive, so that a test can tell whether it ever reached a log or a stored reason.
SMTP_PASSWORD = "smtp-secret-7e41b9"


def report_settings(**overrides: object) -> ReportSettings:
    values: dict[str, object] = {
        "recipients": ("ops@example.com", "lead@example.com"),
        "zone": ZoneInfo("UTC"),
        "send_at": time(8, 0),
        "retry_seconds": 60.0,
        "max_attempts": 3,
        "public_url": "https://notifier.example.com",
    }
    values.update(overrides)
    return ReportSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def smtp(settings) -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that wants a password, and this process's mail going to
    it through Django's SMTP backend (the test runner had put the in-memory one in place)."""
    server = SmtpServer(user=SMTP_USER, password=SMTP_PASSWORD).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = SMTP_USER, SMTP_PASSWORD
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks run inline where they are queued, as the reports process would run them."""
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = False
