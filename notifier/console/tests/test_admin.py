from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client as WebClient
from django.utils import timezone

from notifier.clients.models import Client
from notifier.clients.phones import PHONE_INVALID
from notifier.clients.tests.factories import ClientFactory
from notifier.console.admin import CappedCountPaginator
from notifier.mailings.tests.factories import MailingFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_web() -> WebClient:
    get_user_model().objects.create_superuser("root", "root@example.com", "root-Pass-1")
    web = WebClient()
    web.login(username="root", password="root-Pass-1")
    return web


def test_mailing_page_shows_counts_by_status(admin_web):
    mailing = MailingFactory()
    MessageFactory.create_batch(2, mailing=mailing, status="sent", sent_at=timezone.now())
    MessageFactory(mailing=mailing, status="failed")

    page = admin_web.get(f"/admin/mailings/mailing/{mailing.id}/change/")

    assert page.status_code == 200
    assert b"total: 3, pending: 0, sending: 0, sent: 2, failed: 1" in page.content


@pytest.mark.parametrize(
    "url",
    [
        "/admin/clients/client/",
        "/admin/clients/client/?q=7916",
        "/admin/clients/client/?q=vip",
        "/admin/clients/client/?operator_code=916",
        "/admin/mailings/mailing/",
        "/admin/mailings/mailing/?status=scheduled",
        "/admin/mailings/message/",
        "/admin/mailings/message/?status=sent",
        "/admin/mailings/message/?q=1",
    ],
)
def test_list_pages_use_a_bounded_number_of_queries(admin_web, url, django_assert_max_num_queries):
    mailing = MailingFactory()
    for client in ClientFactory.create_batch(30, tag="vip"):
        MessageFactory(mailing=mailing, client=client)
    admin_web.get(url)  # warm the session and content type caches

    with django_assert_max_num_queries(12):
        page = admin_web.get(url)

    assert page.status_code == 200


def test_message_list_counts_no_further_than_its_cap(admin_web, monkeypatch):
    """At millions of messages an exact count would cost seconds on every page view."""
    monkeypatch.setattr(CappedCountPaginator, "CAP", 5)
    MessageFactory.create_batch(8, mailing=MailingFactory())

    page = admin_web.get("/admin/mailings/message/")

    assert page.status_code == 200
    assert page.context["cl"].result_count == 6
    assert b"6 messages" in page.content
    assert len(page.context["cl"].result_list) == 8


def test_client_search_by_phone_prefix_and_id(admin_web):
    a = ClientFactory(phone="79160000001")
    ClientFactory(phone="79250000002")

    page = admin_web.get("/admin/clients/client/?q=7916")

    assert page.context["cl"].result_count == 1
    assert page.context["cl"].result_list[0] == a
    by_id = admin_web.get(f"/admin/clients/client/?q={a.id}")
    assert a in by_id.context["cl"].result_list


def test_admin_refuses_to_move_a_started_mailings_start(admin_web):
    now = timezone.now()
    mailing = MailingFactory(start_at=now - timedelta(minutes=1))

    response = admin_web.post(
        f"/admin/mailings/mailing/{mailing.id}/change/",
        {
            "start_at_0": "2099-01-01",
            "start_at_1": "00:00:00",
            "end_at_0": "2099-01-02",
            "end_at_1": "00:00:00",
            "text": "x",
            "operator_codes": "[]",
            "tags": "[]",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert b"has started" in response.content
    mailing.refresh_from_db()
    assert mailing.start_at < now


def mailing_form(mailing, **changes) -> dict:
    """The admin's change form for `mailing`, as the page would post it, with `changes`."""
    fields = {
        "start_at": mailing.start_at,
        "end_at": mailing.end_at,
        "text": mailing.text,
        "operator_codes": ", ".join(mailing.operator_codes),
        "tags": ", ".join(mailing.tags),
        **changes,
    }
    form = {}
    for name in ("start_at", "end_at"):
        form[f"{name}_0"] = fields[name].strftime("%Y-%m-%d")
        form[f"{name}_1"] = fields[name].strftime("%H:%M:%S")
    return form | {name: fields[name] for name in ("text", "operator_codes", "tags")}


def test_admin_refuses_to_change_a_running_mailings_text(admin_web):
    """The API and the admin obey one rule: once started, what was sent stays as it was."""
    now = timezone.now()
    mailing = MailingFactory(start_at=now - timedelta(minutes=1), text="Old")

    response = admin_web.post(
        f"/admin/mailings/mailing/{mailing.id}/change/", mailing_form(mailing, text="New")
    )

    assert response.status_code == 200  # the form again, with the error
    assert b"has started" in response.content
    mailing.refresh_from_db()
    assert mailing.text == "Old"


def test_admin_reopens_a_finished_mailings_window(admin_web):
    now = timezone.now().replace(microsecond=0)
    mailing = MailingFactory(
        start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1), finished_at=now
    )
    new_end = now + timedelta(hours=3)

    response = admin_web.post(
        f"/admin/mailings/mailing/{mailing.id}/change/", mailing_form(mailing, end_at=new_end)
    )

    assert response.status_code == 302, response.content
    mailing.refresh_from_db()
    assert mailing.end_at == new_end


@pytest.mark.parametrize("phone", ["+7 916 123-45-67", "8 (916) 123-45-67", "89161234567"])
def test_admin_takes_phones_as_people_write_them(admin_web, phone):
    response = admin_web.post(
        "/admin/clients/client/add/",
        {"phone": phone, "operator_code": "", "tag": "", "timezone": "UTC"},
    )

    assert response.status_code == 302, response.content
    client = Client.objects.get()
    assert (client.phone, client.operator_code) == ("79161234567", "916")


def test_admin_refuses_a_phone_with_the_one_reason(admin_web):
    response = admin_web.post(
        "/admin/clients/client/add/",
        {"phone": "9161234567", "operator_code": "", "tag": "", "timezone": "UTC"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"phone": [PHONE_INVALID]}
    assert not Client.objects.exists()
