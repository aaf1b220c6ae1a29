from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

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
