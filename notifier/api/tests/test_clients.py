import pytest

from notifier.clients.models import Client
from notifier.clients.phones import PHONE_INVALID
from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Message
from notifier.mailings.tests.factories import MessageFactory

pytestmark = pytest.mark.django_db

URL = "/api/clients/"


def create(api, **data):
    return api.post(URL, {"phone": "79161234567", **data}, format="json")


def test_create_returns_the_representation(api):
    response = create(api, operator_code="999", tag="vip", timezone="Asia/Yekaterinburg")

    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "phone": "79161234567",
        "operator_code": "999",
        "tag": "vip",
        "timezone": "Asia/Yekaterinburg",
    }
    assert Client.objects.get(id=body["id"]).phone == "79161234567"


def test_operator_code_defaults_to_digits_two_to_four_of_the_phone(api):
    body = create(api).json()

    assert body["operator_code"] == "916"
    assert body["tag"] == ""
    assert body["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "7916123456"),  # 10 digits
        ("phone", "791612345678"),  # 12 digits
        ("phone", "+89161234567"),
        ("phone", "9161234567"),
        ("phone", "7916123456a"),
        (
            "phone",
            "\uff17\uff19\uff11\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17",
        ),  # full-width
        ("phone", ""),
        ("phone", None),
        ("phone", True),
        ("phone", ["79161234567"]),
        ("operator_code", "91"),
        ("operator_code", "9161"),
        ("operator_code", "abc"),
        ("operator_code", 916),
        ("tag", "x" * 65),
        ("tag", None),
        ("timezone", "Mars/Olympus"),
        ("timezone", ""),
        ("timezone", "europe/moscow"),
        ("timezone", 3),
    ],
)
def test_invalid_field_is_a_400_naming_it(api, field, value):
    response = create(api, **{field: value})

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["status"] == 400
    assert list(error["fields"]) == [field]
    assert error["fields"][field][0]
    assert not Client.objects.exists()


@pytest.mark.parametrize("tag", ["", "x" * 64, "VIP клиенты"])
def test_tag_accepts_empty_and_up_to_64_characters(api, tag):
    assert create(api, tag=tag).status_code == 201


def test_phone_is_required(api):
    response = api.post(URL, {}, format="json")

    assert response.status_code == 400
    assert "phone" in response.json()["error"]["fields"]


def test_duplicate_phone_is_a_400_naming_phone(api):
    ClientFactory(phone="79161234567")

    response = create(api)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "phone": ["A client with this phone already exists."]
    }
    assert Client.objects.count() == 1


@pytest.mark.parametrize(
    "phone",
    [
        "+7 916 123-45-67",
        "+79161234567",
        "89161234567",
        "8 (916) 123-45-67",
        "7-916-123-45-67",
        " 79161234567 ",
    ],
)
def test_phones_in_everyday_forms_are_stored_as_7xxxxxxxxxx(api, phone):
    """They used to be refused with two reasons, one of them about 11 characters."""
    response = create(api, phone=phone)

    assert response.status_code == 201, response.content
    assert response.json()["phone"] == "79161234567"
    assert response.json()["operator_code"] == "916"
    assert Client.objects.get().phone == "79161234567"


@pytest.mark.parametrize("phone", ["9161234567", "+7 916 123-45-678", "x" * 40, "7916123456a"])
def test_a_phone_that_is_not_one_gets_one_clear_reason(api, phone):
    response = create(api, phone=phone)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"phone": [PHONE_INVALID]}


def test_the_same_phone_in_another_form_is_taken(api):
    ClientFactory(phone="79161234567")

    response = create(api, phone="8 916 123 45 67")

    assert response.json()["error"]["fields"] == {
        "phone": ["A client with this phone already exists."]
    }


def test_patch_normalises_a_new_phone_and_re_derives_the_code(api):
    client = ClientFactory(phone="79160000001")

    response = api.patch(f"{URL}{client.id}/", {"phone": "+7 (925) 000-00-01"}, format="json")

    assert response.status_code == 200
    assert (response.json()["phone"], response.json()["operator_code"]) == ("79250000001", "925")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"colour": "red"}, {"colour": ["Unknown field."]}),
        ({"tags": "vip"}, {"tags": ["Unknown field. Did you mean 'tag'?"]}),
        ({"phone_number": "1"}, {"phone_number": ["Unknown field. Did you mean 'phone'?"]}),
        ({"id": 555}, {"id": ["Read-only field: the service sets it."]}),
    ],
)
def test_unknown_and_read_only_fields_are_a_400_naming_them(api, body, fields):
    """They used to be dropped silently: `{"tags": "vip"}` made a client without a tag."""
    response = create(api, **body)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == fields
    assert not Client.objects.exists()


def test_unknown_fields_are_named_beside_the_other_errors(api):
    response = api.post(URL, {"phone": "1", "timezon": "UTC"}, format="json")

    assert set(response.json()["error"]["fields"]) == {"phone", "timezon"}


def test_patch_refuses_unknown_fields_too(api):
    client = ClientFactory(tag="a")

    response = api.patch(f"{URL}{client.id}/", {"tga": "b"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["tga"]
    client.refresh_from_db()
    assert client.tag == "a"


def test_list_filters_by_tag_and_operator_code(api):
    a = ClientFactory(phone="79160000001", tag="a")
    ClientFactory(phone="79160000002", tag="b")
    c = ClientFactory(phone="79260000003", tag="a")

    by_tag = api.get(URL, {"tag": "a"}).json()
    by_code = api.get(URL, {"operator_code": "926"}).json()
    both = api.get(URL, {"tag": "a", "operator_code": "916"}).json()

    assert [r["id"] for r in by_tag["results"]] == [a.id, c.id]
    assert [r["id"] for r in by_code["results"]] == [c.id]
    assert [r["id"] for r in both["results"]] == [a.id]


def test_list_is_paginated_with_page_size_and_a_maximum(api):
    ClientFactory.create_batch(7)

    page = api.get(URL, {"page_size": 3, "page": 2}).json()
    huge = api.get(URL, {"page_size": 10**9}).json()

    assert page["count"] == 7
    assert len(page["results"]) == 3
    assert page["next"].endswith("page=3&page_size=3")
    assert "page_size=3" in page["previous"]
    assert len(huge["results"]) == 7  # capped at the maximum, not an error


def test_page_past_the_end_is_a_404(api):
    ClientFactory()

    response = api.get(URL, {"page": 9})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_retrieve_and_unknown_ids(api):
    client = ClientFactory()

    assert api.get(f"{URL}{client.id}/").json()["phone"] == client.phone
    assert api.get(f"{URL}{client.id + 1}/").status_code == 404
    assert api.get(f"{URL}{'9' * 40}/").status_code == 404
    assert api.get(f"{URL}abc/").status_code == 404


def test_put_replaces_and_re_derives_the_operator_code(api):
    client = ClientFactory(phone="79160000001", operator_code="111", tag="a")

    response = api.put(f"{URL}{client.id}/", {"phone": "79250000001"}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "id": client.id,
        "phone": "79250000001",
        "operator_code": "925",
        "tag": "",
        "timezone": "UTC",
    }


def test_patch_changes_only_the_given_fields(api):
    client = ClientFactory(phone="79160000001", operator_code="111", tag="a")

    response = api.patch(f"{URL}{client.id}/", {"tag": "b"}, format="json")

    assert response.status_code == 200
    client.refresh_from_db()
    assert (client.phone, client.operator_code, client.tag) == ("79160000001", "111", "b")


def test_patch_to_a_taken_phone_is_a_400_and_changes_nothing(api):
    ClientFactory(phone="79160000001")
    client = ClientFactory(phone="79160000002")

    response = api.patch(f"{URL}{client.id}/", {"phone": "79160000001"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["phone"]
    client.refresh_from_db()
    assert client.phone == "79160000002"


def test_patch_with_invalid_value_is_a_400(api):
    client = ClientFactory()

    response = api.patch(f"{URL}{client.id}/", {"timezone": "Nowhere"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["timezone"]


def test_delete_cancels_pending_messages_and_keeps_history(api):
    """A message in flight keeps `sending`: its outcome is recorded when the worker has it."""
    client = ClientFactory()
    sent = MessageFactory(client=client, status=Message.Status.SENT, sent_at="2026-01-01T00:00Z")
    pending = MessageFactory(client=client)
    sending = MessageFactory(client=client, status=Message.Status.SENDING)

    response = api.delete(f"{URL}{client.id}/")

    assert response.status_code == 204
    assert not Client.objects.filter(id=client.id).exists()
    statuses = {m.id: (m.status, m.client_id, m.phone) for m in Message.objects.all()}
    assert statuses == {
        sent.id: ("sent", None, client.phone),
        pending.id: ("cancelled", None, client.phone),
        sending.id: ("sending", None, client.phone),
    }


def test_empty_tag_filter_means_clients_without_a_tag(api):
    untagged = ClientFactory(tag="")
    ClientFactory(tag="vip")

    body = api.get(URL, {"tag": ""}).json()

    assert [r["id"] for r in body["results"]] == [untagged.id]


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("tags=vip", "tags", "Unknown query parameter. Did you mean 'tag'?"),
        ("colour=red", "colour", "Unknown query parameter."),
        ("operator_code=91", "operator_code", "Enter a mobile operator code of exactly 3 digits."),
        ("tag=" + "x" * 65, "tag", "Ensure this value has at most 64 characters (it has 65)."),
        ("tag=a%00b", "tag", "Null characters are not allowed."),
        ("tag=a&tag=b", "tag", "Give this parameter once."),
        ("page=0", "page", "Must be a positive integer."),
        ("page=", "page", "Must be a positive integer."),
        ("page_size=-1", "page_size", "Must be a positive integer."),
        ("page_size=ten", "page_size", "Must be a positive integer."),
    ],
)
def test_bad_query_parameters_are_a_400_naming_them(api, query, field, reason):
    ClientFactory()

    response = api.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {field: [reason]}
