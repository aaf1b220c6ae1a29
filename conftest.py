from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from notifier.testing.stack import Redis, Stack
from probe_sim.testing import ProbeProcess

# Distinctive, so that a test can tell whether it ever leaked into a log or an error.
PROBE_TOKEN = "probe-test-token-5d21c0"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(username="operator", password="s3cret-Pass!")


@pytest.fixture
def api(user) -> APIClient:
    """An API client authenticated as an operator with a Bearer token."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(scope="session")
def probe_process() -> Iterator[ProbeProcess]:
    with ProbeProcess(token=PROBE_TOKEN, seed=1) as simulator:
        yield simulator


@pytest.fixture
def probe(probe_process: ProbeProcess) -> ProbeProcess:
    """The simulator of the external API, with no records, no outage and no faults."""
    probe_process.reset()
    return probe_process


def _reconnect_publisher(broker_url: str, transport_options: dict) -> None:
    """Point this test process's Celery publisher (the API's wake-ups) at the test broker."""
    from config.celery import app

    app.conf.update(broker_url=broker_url, broker_transport_options=transport_options)
    # Drop the pools bound to the old broker; Celery makes new ones on the next publish.
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis | None]:
    """Redis on PostgreSQL runs (the production pairing); SQLite runs use the file broker."""
    if connection.vendor != "postgresql":
        yield None
        return
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(transactional_db, tmp_path: Path, probe: ProbeProcess, redis: Redis | None):
    from django.conf import settings

    if redis is not None:
        broker_url = redis.url
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    else:
        broker_url = "filesystem://"
        options = {
            **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            **{
                key: str(tmp_path / "broker" / folder)
                for key, folder in [
                    ("data_folder_in", "queue"),
                    ("data_folder_out", "queue"),
                    ("processed_folder", "processed"),
                    ("control_folder", "control"),
                ]
            },
        }
        for folder in ("queue", "processed", "control"):
            (tmp_path / "broker" / folder).mkdir(parents=True, exist_ok=True)
    _reconnect_publisher(broker_url, options)
    system = Stack(
        workdir=tmp_path, broker_url=broker_url, probe_url=probe.url, probe_token=probe.token or ""
    )
    yield system
    system.stop()
    _reconnect_publisher(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
