"""Messages listed by mailing and by client, with their filters."""

import pytest
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.tests.factories import MailingFactory, MessageFactory
from notifier.sending.services import client_delete

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [m["id"] for m in response.json()["results"]]


def test_messages_of_a_mailing_with_status_filter(api):
    mailing = MailingFactory()
    sent = MessageFactory(
        mailing=mailing, status="sent", sent_at=timezone.now(), attempts=2, last_error="HTTP 503"
    )
    failed = MessageFactory(mailing=mailing, status="failed", attempts=1)
    MessageFactory()  # another mailing's

    everything = api.get(f"/api/mailings/{mailing.id}/messages/").json()
    only_sent = api.get(f"/api/mailings/{mailing.id}/messages/", {"status": "sent"}).json()

    assert [m["id"] for m in everything["results"]] == [sent.id, failed.id]
    assert only_sent["count"] == 1
    assert only_sent["results"][0] == {
        "id": sent.id,
        "mailing_id": mailing.id,
        "client_id": sent.client_id,
        "phone": sent.phone,
        "status": "sent",
        "created_at": only_sent["results"][0]["created_at"],
        "sent_at": only_sent["results"][0]["sent_at"],
        "attempts": 2,
        "last_error": "HTTP 503",
    }
    bad = api.get(f"/api/mailings/{mailing.id}/messages/", {"status": "delivered"})
    assert bad.status_code == 400
    assert list(bad.json()["error"]["fields"]) == ["status"]


def test_a_clients_messages_of_every_mailing(api):
    """`/api/clients/{id}/messages/` used to be a 404."""
    client = ClientFactory()
    first = MessageFactory(client=client)
    second = MessageFactory(client=client, status="failed")
    MessageFactory()  # another client's

    everything = api.get(f"/api/clients/{client.id}/messages/")
    failed = api.get(f"/api/clients/{client.id}/messages/", {"status": "failed"})
    of_one = api.get(f"/api/clients/{client.id}/messages/", {"mailing_id": first.mailing_id})

    assert ids(everything) == [first.id, second.id]
    assert everything.json()["results"][0]["client_id"] == client.id
    assert ids(failed) == [second.id]
    assert ids(of_one) == [first.id]


def test_an_unknown_client_has_no_message_list(api):
    assert api.get("/api/clients/12345/messages/").json()["error"]["code"] == "not_found"


def test_a_mailings_messages_by_client_and_by_phone_in_any_form(api):
    """`?client_id=` and `?phone=` used to be unknown parameters; the phone also finds the
    message of a client deleted since."""
    mailing = MailingFactory()
    kept = MessageFactory(mailing=mailing, client=ClientFactory(phone="79160000001"))
    gone = MessageFactory(mailing=mailing, client=ClientFactory(phone="79160000002"))
    client_delete(client=gone.client)
    url = f"/api/mailings/{mailing.id}/messages/"

    assert ids(api.get(url, {"client_id": kept.client_id})) == [kept.id]
    assert ids(api.get(url, {"phone": "+7 916 000-00-02"})) == [gone.id]
    assert ids(api.get(url, {"phone": "89160000001"})) == [kept.id]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"client_id": "1.5"}, "client_id"),
        ({"client_id": "0"}, "client_id"),
        ({"client_id": str(2**63)}, "client_id"),
        ({"phone": "12345"}, "phone"),
        ({"status": "SENT"}, "status"),
        ({"client": "1"}, "client"),
    ],
)
def test_bad_message_filters_are_a_400_naming_them(api, query, field):
    mailing = MailingFactory()

    response = api.get(f"/api/mailings/{mailing.id}/messages/", query)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


def test_an_invalid_status_lists_the_choices(api):
    """`?status=SENT` used to say only that SENT is not one of them."""
    mailing = MailingFactory()

    response = api.get(f"/api/mailings/{mailing.id}/messages/", {"status": "SENT"})

    assert response.json()["error"]["fields"] == {
        "status": ["Choose one of: pending, sending, sent, failed, expired, cancelled."]
    }
