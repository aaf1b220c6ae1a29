"""Bad REPORT_* values are refused with a message naming the variable, at `manage.py check`."""

import os
import subprocess
import sys

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from notifier.reports.settings import ReportSettings, parse_send_at, parse_zone


@pytest.mark.parametrize("value", ["8:00", "08.00", "24:00", "08:00+01:00", "", "08:00:00.5"])
def test_a_send_time_is_hh_mm(value):
    with pytest.raises(ImproperlyConfigured, match="REPORT_SEND_AT"):
        parse_send_at(value)


def test_seconds_may_be_given():
    assert parse_send_at("07:30:15").second == 15


def test_an_unknown_zone_is_refused():
    with pytest.raises(ImproperlyConfigured, match="'Europe/Atlantis' is not an IANA time zone"):
        parse_zone("Europe/Atlantis")


def test_manage_py_check_names_the_bad_setting(settings):
    settings.REPORTS = {**settings.REPORTS, "RECIPIENTS": ["ops@example.com", "nobody"]}
    errors = [e for e in checks.run_checks() if e.id == "reports.E001"]
    assert [e.msg for e in errors] == ["REPORT_RECIPIENTS: 'nobody' is not an e-mail address"]


def test_the_defaults_load():
    config = ReportSettings.load()
    assert (config.zone.key, config.send_at.isoformat(), config.recipients) == (
        "UTC",
        "08:00:00",
        (),
    )


def test_the_smtp_password_of_email_url_is_blanked_out_of_every_log_line():
    """Whatever logs it (an SMTP library echoing a command, an error), the password of
    EMAIL_URL is a known secret of the log redactor; the URL's other parts are kept."""
    password = "smtp-pass-3c91f0"
    script = (
        "import django, logging; django.setup();"
        "from django.conf import settings;"
        "print(settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS);"
        f"logging.getLogger('smtp').warning('login refused for reports with {password}')"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "1",
        "EMAIL_URL": f"smtp+tls://reports:{password}@mail.example.com:587",
        "LOG_FORMAT": "json",
        "LOG_FILE": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mail.example.com", "587", "True"]
    assert "login refused for reports with [redacted]" in result.stderr
    assert password not in result.stderr + result.stdout
