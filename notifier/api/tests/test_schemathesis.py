"""Property-based fuzzing of the whole API from its own OpenAPI schema.

Schemathesis generates valid and invalid requests for every operation, and sends the
schema's own examples (its examples phase); every response must be documented, in the
documented shape and content type, and never a 500. Reads are held to more: whatever their
schema allows must be accepted, so the schema states every bound the API enforces.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.tests.factories import MailingFactory, MessageFactory

pytestmark = pytest.mark.slow


@pytest.fixture
def api_schema(db, user):
    # Like Django's test client: the request signals must not close the test's connection,
    # which would end the test transaction on PostgreSQL.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # Some ids that exist, so that generated paths reach real objects as well as 404s.
    for mailing in MailingFactory.create_batch(2):
        MessageFactory(mailing=mailing, client=ClientFactory())
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    # Both generation modes (valid and invalid requests) are on by default. Credentials are
    # ours, not generated: the auth checks replay requests without and with bad ones.
    schema.config.generation.update(with_security_parameters=False)
    yield schema
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def auth(user) -> dict[str, str]:
    # Explicit credentials: schemathesis also replays each request without and with bad ones,
    # and expects a 401 for those.
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Bearer {token.key}"}


@schema.parametrize()
@FUZZ
def test_api_conforms_to_its_schema_and_never_fails(case, user):
    case.call_and_validate(
        headers=auth(user),
        # Business rules a schema cannot state (an end in the future, a real IANA zone, the
        # right password, a phone not yet taken) reject some schema-valid writes on purpose;
        # those 400s are tested one by one in the API tests. Reads: below.
        excluded_checks=[positive_data_acceptance],
    )


@schema.include(method="GET").parametrize()
@FUZZ
def test_every_read_the_schema_allows_is_accepted(case, user):
    """A schema-valid query (`page=0` was one, before the schema said `minimum: 1`) is never
    refused: a 400 here means a bound the API enforces and the schema does not state."""
    case.call_and_validate(headers=auth(user))
