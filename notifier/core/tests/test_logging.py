import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.core import logging as notifier_logging
from notifier.core.logging import REDACTED, Redactor

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[3]


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


FORGED = "\x1b[2J\x1b[31mFORGED\r\n\x9b1m\x07\x7f"


def console(record_message: str, **extra: object) -> str:
    formatter = notifier_logging.formatter(fmt="console", secrets=[])
    record = logging.LogRecord("t", logging.INFO, __file__, 1, record_message, None, None)
    record.__dict__.update(extra)
    return formatter.format(record)


def raw_controls(text: str) -> set[str]:
    return {c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F}


def test_no_format_writes_a_control_character_raw():
    """A request path or a tag could clear or recolour the terminal of whoever reads the
    logs, or forge a line: in the console format every key and value, the event too, is
    written escaped; JSON escapes them itself."""
    line = console(f"request {FORGED}", path="/api/" + FORGED, tag=FORGED, **{FORGED: "k"})

    assert raw_controls(line) == set()
    assert r"path='/api/\x1b[2J\x1b[31mFORGED\r\n\x9b1m\x07\x7f'" in line
    assert r"tag='\x1b[2J" in line
    assert r"'request \x1b[2J" in line
    assert r"\x1b[2J\x1b[31mFORGED\x0d\x0a\x9b1m\x07\x7f=k" in line
    formatter = notifier_logging.formatter(fmt="json", secrets=[])
    record = logging.LogRecord("t", logging.INFO, __file__, 1, FORGED, None, None)
    record.__dict__["tag"] = FORGED
    line = formatter.format(record)
    assert raw_controls(line) == set()
    assert json.loads(line)["tag"] == FORGED


def test_a_traceback_keeps_its_lines_and_loses_its_escapes():
    try:
        raise ValueError(FORGED)
    except ValueError:
        exc_info = sys.exc_info()
    formatter = notifier_logging.formatter(fmt="console", secrets=[])
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, exc_info)
    line = formatter.format(record)

    assert "\nTraceback (most recent call last):\n" in line
    assert raw_controls(line) == {"\n"}
    assert r"ValueError: \x1b[2J\x1b[31mFORGED\x0d" in line


def test_datetimes_are_iso_8601_in_both_formats():
    """An investigation compares and sorts them: `datetime.datetime(2031, 1, 1, ...)` it
    cannot."""
    start = datetime(2031, 1, 1, tzinfo=UTC)

    event = render("mailing created", secrets=[], start_at=start, day=start.date())

    assert (event["start_at"], event["day"]) == ("2031-01-01T00:00:00+00:00", "2031-01-01")
    assert "start_at=2031-01-01T00:00:00+00:00" in console("mailing created", start_at=start)


WRITER = """
import logging, sys
from notifier.core.logging import file_handler
handler = file_handler(sys.argv[1])
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("w")
log.addHandler(handler)
log.propagate = False
for i in range(100):
    log.warning("%s", f'{{"writer": {sys.argv[2]}, "i": {i}, "pad": "{sys.argv[2] * 70000}"}}')
"""


def test_processes_sharing_the_log_file_never_interleave_their_lines(tmp_path):
    """`make run`'s processes append to one file: each line arrives whole, even lines far
    longer than the stream's buffer."""
    path = tmp_path / "log" / "shared.jsonl"  # the handler makes the folder
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)], cwd=ROOT)
        for n in range(1, 5)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]

    lines = path.read_text().splitlines()
    assert len(lines) == 4 * 100
    parsed = [json.loads(line) for line in lines]  # a torn line would not parse
    assert all(event["pad"] == str(event["writer"]) * 70000 for event in parsed)
