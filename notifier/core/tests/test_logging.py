import json
import logging
import os
import re

import pytest

from notifier.core import logging as notifier_logging
from notifier.core.logging import REDACTED, Redactor

pytestmark = pytest.mark.django_db


def render(record_message: str, *, secrets: list[str], **extra: object) -> dict:
    formatter = notifier_logging.formatter(fmt="json", secrets=secrets)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, record_message, None, None)
    record.__dict__.update(extra)
    return json.loads(formatter.format(record))


def test_secret_values_bearer_credentials_and_secret_keys_are_blanked():
    event = render(
        "calling with Authorization: Bearer abc.def.ghi and probe-secret-123",
        secrets=["probe-secret-123"],
        password="hunter22",
        token="t0ken-value",
    )

    assert event["event"] == f"calling with Authorization: Bearer {REDACTED} and {REDACTED}"
    assert event["password"] == REDACTED
    assert event["token"] == REDACTED


def test_a_secret_goes_whole_wherever_it_is_and_however_it_is_spelt():
    redactor = Redactor(["pass word1", "pass word1 longer", "Probe-Secret"])

    assert redactor.scrub("Authorization: Bearer pass word1") == f"Authorization: Bearer {REDACTED}"
    assert redactor.scrub("x pass word1 longer y") == f"x {REDACTED} y"
    assert redactor.scrub("BEARER Probe-Secret, probe-secret") == f"BEARER {REDACTED}, probe-secret"


def test_short_or_empty_secrets_do_not_blank_everything():
    assert Redactor(["", "ab"]).scrub("a perfectly ordinary line") == "a perfectly ordinary line"


def test_records_keep_what_other_formats_show():
    # gunicorn's error log formats "[%(process)d]": a record without it would not print.
    record = logging.getLogger("gunicorn.error").makeRecord(
        "gunicorn.error", logging.ERROR, "f.py", 1, "Worker failed", None, None
    )
    line = logging.Formatter("[%(process)d] [%(thread)d] %(message)s").format(record)
    assert line.startswith(f"[{os.getpid()}] ")


def test_bound_context_flows_into_standard_library_records():
    with notifier_logging.bound(mailing_id=42, request_id="r"):
        event = render("started", secrets=[])

    assert (event["mailing_id"], event["request_id"], event["event"]) == (42, "r", "started")


def test_every_response_carries_a_request_id(api):
    given = api.get("/api/clients/", HTTP_X_REQUEST_ID="trace-7")
    generated = api.get("/api/clients/")
    unsafe = api.get("/api/clients/", HTTP_X_REQUEST_ID="x" * 500)

    assert given["X-Request-ID"] == "trace-7"
    assert re.fullmatch(r"[0-9a-f]{32}", generated["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe["X-Request-ID"])
