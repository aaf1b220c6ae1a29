"""Hostile input, as an adversarial run in production mode sent it: every answer is a 4xx (or
a 503 while the database is away) in the documented error shape, never a 500, an HTML page or
a half-written object."""

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client as WebClient
from django.utils import timezone

from notifier.api.parsers import MAX_DEPTH
from notifier.clients.models import Client
from notifier.core import outage
from notifier.mailings.models import Mailing
from notifier.testing.stack import free_port

pytestmark = pytest.mark.django_db


def post_raw(client, path: str, body: bytes, content_type: str = "application/json", **extra):
    return client.generic("POST", path, body, content_type=content_type, **extra)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"]
    return error


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/clients/", "/api/mailings/"])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_json_nested_1000_deep_is_a_400_not_a_recursion_error(api, path, opener):
    """It used to be a 500 (RecursionError in the parser), on the public token endpoint too."""
    closer = b"]" if opener == b"[" else b"}"
    body = opener * 1000 + b"1" + closer * 1000

    error = assert_error(post_raw(api, path, body), 400, "parse_error")

    assert f"nested more than {MAX_DEPTH} deep" in error["message"]
    assert not Client.objects.exists()


def test_nesting_is_measured_outside_strings(api):
    """Brackets inside a string are text: a tag made of them is a tag, not nesting."""
    response = api.post("/api/clients/", {"phone": "79161234567", "tag": "[" * 60}, format="json")

    assert response.status_code == 201


def test_nesting_just_within_the_bound_reaches_validation(api):
    body = b'{"phone": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"

    error = assert_error(post_raw(api, "/api/clients/", body), 400, "invalid")

    assert list(error["fields"]) == ["phone"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # never closed
        b"[" * 40 + b'"' + b"]" * 40,  # the closers inside an unterminated string
        b"[" * 40 + b"}" * 40,  # closers that do not pair
    ],
)
def test_deep_malformed_json_is_a_400(api, body):
    assert_error(post_raw(api, "/api/clients/", body), 400, "parse_error")


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/clients/"])
def test_a_10_mb_body_is_a_413_in_the_error_shape(api, path):
    """It used to be Django's HTML "Bad Request (400)" page."""
    body = b'{"phone": "' + b"7" * 10_000_000 + b'"}'

    error = assert_error(post_raw(api, path, body), 413, "request_too_large")

    assert "1048576 bytes" in error["message"]


def test_a_body_announced_larger_than_the_limit_is_refused_unread(api):
    response = post_raw(api, "/api/clients/", b"{}", CONTENT_LENGTH=str(50 * 1024 * 1024))

    assert_error(response, 413, "request_too_large")


def test_the_largest_valid_body_fits_the_limit(api):
    """1000 tags of 64 characters, each written as a JSON escape, stays under 1 MiB."""
    start = timezone.now() + timedelta(hours=1)
    body = {
        "start_at": start.isoformat(),
        "end_at": (start + timedelta(hours=1)).isoformat(),
        "text": "я" * 1000,
        "filter": {
            "operator_codes": [f"{n:03d}" for n in range(1000)],
            "tags": [f"{n:03d}" + "я" * 61 for n in range(1000)],
        },
    }
    raw = json.dumps(body, ensure_ascii=True).encode()
    assert len(raw) > 350_000

    assert post_raw(api, "/api/mailings/", raw).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "7" * 1_000_000}, "phone"),
        ({"phone": "79161234567", "tag": "x" * 100_000}, "tag"),
        ({"phone": "79161234567", "timezone": "x" * 100_000}, "timezone"),
        ({"phone": "79161234567", "operator_code": "9" * 100_000}, "operator_code"),
    ],
)
def test_every_client_field_is_bounded(api, body, field):
    error = assert_error(api.post("/api/clients/", body, format="json"), 400, "invalid")

    assert list(error["fields"]) == [field]
    assert len(error["fields"][field]) == 1


def test_every_mailing_field_is_bounded(api):
    start = timezone.now() + timedelta(hours=1)
    body = {
        "start_at": start.isoformat(),
        "end_at": (start + timedelta(hours=1)).isoformat(),
        "text": "x" * 100_000,
        "filter": {"operator_codes": ["916"] * 1001, "tags": ["x" * 65]},
    }

    error = assert_error(api.post("/api/mailings/", body, format="json"), 400, "invalid")

    assert set(error["fields"]) == {"text", "filter.operator_codes", "filter.tags.0"}
    assert not Mailing.objects.exists()


def test_token_fields_are_bounded(anon):
    response = anon.post(
        "/api/auth/token/", {"username": "u" * 100_000, "password": "p" * 100_000}, format="json"
    )

    assert set(assert_error(response, 400, "invalid")["fields"]) == {"username", "password"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"phone": 1' + b"0" * 5000 + b"}", "application/json"),  # past int's digit limit
        (b'{"phone": "79161234567"}', "application/json; charset=utf-16"),
        (b'{"phone": NaN}', "application/json"),
    ],
)
def test_odd_bodies_are_a_400_parse_error(api, body, content_type):
    assert_error(post_raw(api, "/api/clients/", body, content_type), 400, "parse_error")


def test_a_disallowed_host_is_a_400_in_the_error_shape(client):
    """Django's answer to a `Host` not in DJANGO_ALLOWED_HOSTS used to be an HTML page."""
    assert_error(client.get("/api/clients/", HTTP_HOST="evil.example"), 400, "bad_request")


# -- the database away ---------------------------------------------------------------------


class Database:
    """Stops and starts the test database as the web process sees it: stopped, every new
    connection is refused (PostgreSQL: a port nobody listens on; SQLite: a file that cannot
    be opened)."""

    def __init__(self, tmp_path: Path) -> None:
        self.saved = dict(connection.settings_dict)
        self.unreachable = str(tmp_path / "no-such-folder" / "db.sqlite3")

    def stop(self) -> None:
        connection.close()
        if connection.vendor == "postgresql":
            connection.settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
        else:
            connection.settings_dict["NAME"] = self.unreachable

    def start(self) -> None:
        connection.close()
        connection.settings_dict.update(self.saved)


@pytest.fixture
def database(transactional_db, tmp_path: Path, monkeypatch) -> Iterator[Database]:
    monkeypatch.setattr(outage, "_down_since", None)
    database = Database(tmp_path)
    yield database
    database.start()


@pytest.fixture
def logs(caplog) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO):
        yield caplog


@pytest.fixture
def admin_web(transactional_db) -> WebClient:
    get_user_model().objects.create_superuser("root", "root@example.com", "root-Pass-1")
    web = WebClient()
    web.login(username="root", password="root-Pass-1")
    return web


OUTAGE_STARTS = "database unavailable: answering 503 until it is back"


def test_while_the_database_is_down_every_request_is_a_503_and_it_is_logged_once(
    api, admin_web, database, logs
):
    """It used to answer 500 with a traceback logged on every request."""
    database.stop()
    answers = [
        api.get("/api/clients/"),
        api.post("/api/clients/", {"phone": "79161234567"}, format="json"),
        api.get("/api/mailings/stats/"),
        admin_web.get("/admin/clients/client/"),  # a view outside the API
    ]

    for response in answers:
        error = assert_error(response, 503, "database_unavailable")
        assert response["Retry-After"] == str(outage.RETRY_AFTER_SECONDS)
        assert "127.0.0.1" not in error["message"]
    warnings = [r for r in logs.records if r.levelno >= logging.WARNING]
    assert [r.msg["event"] for r in warnings] == [OUTAGE_STARTS]
    assert not any(r.exc_info for r in logs.records)


def test_the_end_of_an_outage_is_logged_once_too(api, database, logs):
    database.stop()
    assert api.get("/api/clients/").status_code == 503
    database.start()

    assert api.get("/api/clients/").status_code == 200
    assert api.get("/api/clients/").status_code == 200

    events = [r.msg["event"] for r in logs.records if r.name == "notifier.core.outage"]
    assert events == [OUTAGE_STARTS, "database available again"]


def test_readiness_says_the_database_failed_without_its_host_or_port(client, database):
    """The public /health/ready used to return the driver's text, host and port included."""
    database.stop()

    response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == {
        "ok": False,
        "ms": body["checks"]["database"]["ms"],
        "error": "OperationalError",
    }
    assert "127.0.0.1" not in response.content.decode()
    assert "no-such-folder" not in response.content.decode()
