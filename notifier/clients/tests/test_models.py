"""The database itself holds the invariants, whatever code (or person) writes to it."""

import pytest
from django.db import DataError, IntegrityError, transaction

from notifier.clients.models import Client
from notifier.clients.tests.factories import ClientFactory

pytestmark = pytest.mark.django_db


def refused(write) -> bool:
    try:
        with transaction.atomic():
            write()
    except (IntegrityError, DataError):  # DataError: PostgreSQL's varchar length
        return True
    return False


@pytest.mark.parametrize("phone", ["89161234567", "7916123456", "7916123456x", "791612345678"])
def test_client_phone_format(phone):
    assert refused(lambda: Client.objects.create(phone=phone, operator_code="916"))


@pytest.mark.parametrize("code", ["91", "9a6", "9166"])
def test_client_operator_code_format(code):
    assert refused(lambda: Client.objects.create(phone="79161234567", operator_code=code))


def test_client_phone_unique():
    ClientFactory(phone="79161234567")

    assert refused(lambda: Client.objects.create(phone="79161234567", operator_code="916"))
