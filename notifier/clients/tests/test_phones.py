"""The one phone normalisation every way in uses (API, services, admin, later CSV import)."""

import pytest
from django.core.exceptions import ValidationError

from notifier.clients.phones import PHONE_INVALID, PhoneFormField, phone_normalise
from notifier.clients.services import client_create, client_update
from notifier.clients.tests.factories import ClientFactory
from notifier.core.errors import DomainError


@pytest.mark.parametrize(
    "written",
    [
        "79161234567",
        "+79161234567",
        "89161234567",
        "+7 916 123-45-67",
        "+7 (916) 123-45-67",
        "8 (916) 123 45 67",
        "7-916-123-45-67",
        "  +7 916 1234567  ",
    ],
)
def test_everyday_forms_become_7xxxxxxxxxx(written):
    assert phone_normalise(written) == "79161234567"


@pytest.mark.parametrize(
    "written",
    [
        "",
        "9161234567",  # 10 digits, no prefix
        "+89161234567",  # +8 is no country code
        "+7 916 123-45-678",  # 11 digits after +7
        "791612345678",
        "7916123456a",
        "7.916.123.45.67",
        "(7) 916 123 45 67",
        "\uff17\uff19\uff11\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width
        "7" + " " * 40 + "9161234567",  # too long to be a phone, whatever it holds
    ],
)
def test_anything_else_gets_one_reason(written):
    with pytest.raises(ValidationError) as raised:
        phone_normalise(written)

    assert raised.value.messages == [PHONE_INVALID]


def test_the_form_field_normalises_and_refuses_with_the_same_reason():
    field = PhoneFormField()

    assert field.clean("8 916 123-45-67") == "79161234567"
    with pytest.raises(ValidationError) as raised:
        field.clean("12345")
    assert raised.value.messages == [PHONE_INVALID]


@pytest.mark.django_db
def test_the_services_store_the_normal_form_and_refuse_the_rest():
    client = client_create(phone="+7 925 000-00-01")
    client_update(client=client, data={"phone": "8 (926) 000-00-02"})

    client.refresh_from_db()
    assert (client.phone, client.operator_code) == ("79260000002", "926")
    with pytest.raises(DomainError) as raised:
        client_create(phone="926 000 00 03")
    assert (raised.value.fields, raised.value.message) == (("phone",), PHONE_INVALID)


@pytest.mark.django_db
def test_the_same_number_in_another_form_is_the_same_client():
    ClientFactory(phone="79161234567")

    with pytest.raises(DomainError) as raised:
        client_create(phone="8 916 123 45 67")

    assert raised.value.code == "unique"
