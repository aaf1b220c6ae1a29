from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from notifier.testing.stack import Redis, Stack, file_broker_options, point_publisher_at
from probe_sim.testing import ProbeProcess

# Distinctive, so that a test can tell whether it ever leaked into a log or an error.
PROBE_TOKEN = "probe-test-token-5d21c0"
# A test that uses one of these runs real processes: it is an integration test, whether or
# not its module says so (`make test-fast` leaves them out).
PROCESS_FIXTURES = frozenset({"probe_process", "stack", "redis"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


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
        # Where the workers' settings put it, under their VAR_DIR (the Stack's workdir).
        broker_url = settings.FILE_BROKER_URL
        options = file_broker_options(tmp_path / "broker")
    point_publisher_at(broker_url, options)
    system = Stack(
        workdir=tmp_path, broker_url=broker_url, probe_url=probe.url, probe_token=probe.token or ""
    )
    yield system
    system.stop()
    point_publisher_at(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)


@pytest.fixture
def file_broker(tmp_path: Path) -> Iterator[Path]:
    """This process publishes to a file broker of its own; yields its queue folder, where
    every published task is a file (notifier.testing.stack.published reads them)."""
    from django.conf import settings

    options = file_broker_options(tmp_path / "broker")
    point_publisher_at(settings.FILE_BROKER_URL, options)
    yield Path(options["data_folder_out"])
    point_publisher_at(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
