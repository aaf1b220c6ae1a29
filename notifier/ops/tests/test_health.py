import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import OperationalError

from notifier.ops import health
from notifier.testing.stack import Redis, free_port


@pytest.fixture
def file_broker(settings, tmp_path: Path) -> dict[str, str]:
    """The embedded broker, in folders of this test's own."""
    options = {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "processed_folder": str(tmp_path / "processed"),
        "control_folder": str(tmp_path / "control"),
    }
    (tmp_path / "queue").mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    return options


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A Redis URL whose port accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def ready(client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/health/ready")
    return response.status_code, response.json(), time.monotonic() - started


def test_live_is_ok_without_touching_any_dependency(client):
    # No `db` fixture: pytest-django would fail any database access.
    response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_with_the_database_and_the_file_broker(client, file_broker):
    status, body, _ = ready(client)

    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert set(body["checks"]["database"]) == {"ok", "ms"}
    assert 0 <= body["checks"]["database"]["ms"] < 500


@pytest.mark.django_db
def test_ready_with_redis(client, settings, redis_server):
    settings.CELERY_BROKER_URL = redis_server.url

    status, body, _ = ready(client)

    assert status == 200, body
    assert body["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_not_ready_at_once_when_redis_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    status, body, elapsed = ready(client)

    assert status == 503
    assert elapsed < 1
    assert body["status"] == "fail"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False
    assert "ConnectionError" in body["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_not_ready_in_under_a_second_when_redis_never_answers(client, settings, silent_server):
    settings.CELERY_BROKER_URL = silent_server

    status, body, elapsed = ready(client)

    assert status == 503
    assert elapsed < 1
    assert body["checks"]["broker"]["ok"] is False
    assert "Timeout" in body["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_not_ready_when_another_broker_is_down(client, settings):
    """Brokers other than Redis and files are checked through kombu, just as briefly."""
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}//"

    status, body, elapsed = ready(client)

    assert status == 503
    assert elapsed < 1
    assert body["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_ready_creates_the_file_broker_queue_folder_as_the_publisher_would(client, file_broker):
    queue = Path(file_broker["data_folder_in"])
    queue.rmdir()

    status, _, _ = ready(client)

    assert status == 200
    assert queue.is_dir()


@pytest.mark.django_db
def test_not_ready_when_the_file_broker_queue_cannot_be_a_folder(client, file_broker):
    queue = Path(file_broker["data_folder_in"])
    queue.rmdir()
    queue.write_text("not a folder")

    status, body, _ = ready(client)

    assert status == 503
    assert body["checks"]["broker"]["error"].startswith("FileExistsError")


DRIVER_MESSAGE = 'connection to server at "db.internal" (10.1.2.3), port 5432 failed: refused'


@pytest.mark.django_db
def test_not_ready_names_the_check_but_logs_the_drivers_message(
    client, file_broker, monkeypatch, caplog
):
    """The public answer used to carry the driver's text, with the database host and port;
    it goes to the log now, once while the check keeps failing, and once when it passes."""
    failing = True

    def database() -> None:
        if failing:
            raise OperationalError(DRIVER_MESSAGE)

    monkeypatch.setitem(health.CHECKS, "database", database)
    monkeypatch.setattr(health, "_failing", {})

    with caplog.at_level(logging.INFO, logger="notifier.ops.health"):
        answers = [ready(client) for _ in range(3)]
        failing = False
        recovered = ready(client)

    for status, body, _ in answers:
        assert status == 503
        assert body["checks"]["database"] == {
            "ok": False,
            "ms": body["checks"]["database"]["ms"],
            "error": "OperationalError",
        }
        assert body["checks"]["broker"]["ok"] is True
        assert "db.internal" not in json.dumps(body)
        assert "5432" not in json.dumps(body)
    assert recovered[0] == 200
    logged = [r.msg for r in caplog.records if r.name == "notifier.ops.health"]
    assert [(e["event"], e["check"]) for e in logged] == [
        ("readiness check failing", "database"),
        ("readiness check passing again", "database"),
    ]
    assert logged[0]["error"] == f"OperationalError: {DRIVER_MESSAGE}"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health/ready/", "/health/live/"])
def test_a_trailing_slash_answers_like_the_path_without(client, file_broker, path):
    """`/health/ready/` used to be Django's HTML 404 page."""
    response = client.get(path)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/health/live", "/health/ready/", "/metrics", "/metrics/"])
def test_other_methods_are_a_405_in_the_error_shape(client, path):
    response = client.post(path, {})

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_a_hanging_check_costs_each_probe_half_a_second_and_runs_once(
    client, file_broker, monkeypatch
):
    """A dependency that never answers (a firewalled host): every probe answers 503 within the
    timeout, and probes arriving meanwhile wait for the same check instead of piling up
    threads."""
    calls, release = [], threading.Event()

    def database_hangs() -> None:
        calls.append(1)
        release.wait(10)

    monkeypatch.setitem(health.CHECKS, "database", database_hangs)
    try:
        first = ready(client)
        second = ready(client)
        assert len(calls) == 1
    finally:
        release.set()
    third = ready(client)  # waits for the released check, which now returns

    for status, body, elapsed in (first, second):
        assert status == 503
        assert elapsed < 1
        assert body["checks"]["database"]["error"].startswith("no answer in ")
        assert body["checks"]["broker"]["ok"] is True
    assert second[1]["checks"]["database"]["ms"] > first[1]["checks"]["database"]["ms"]
    assert third[0] == 200
