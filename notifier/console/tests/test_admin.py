from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client as WebClient
from django.utils import timezone

from notifier.clients.models import Client
from notifier.clients.phones import PHONE_INVALID
from notifier.clients.tests.factories import ClientFactory
from notifier.console.admin import CappedCountPaginator
from notifier.mailings.models import Mailing
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


def listed(page) -> set[int]:
    return {obj.id for obj in page.context["cl"].result_list}


def test_list_filters_show_exactly_the_matching_rows(admin_web):
    now = timezone.now()
    vip = ClientFactory(phone="79161110001", operator_code="916", tag="vip")
    other = ClientFactory(phone="79261110002", operator_code="926", tag="")
    scheduled = MailingFactory(start_at=now + timedelta(hours=1), end_at=now + timedelta(hours=2))
    running = MailingFactory(start_at=now - timedelta(hours=1), end_at=now + timedelta(hours=1))
    sent = MessageFactory(mailing=running, client=vip, status="sent", sent_at=now)
    pending = MessageFactory(mailing=running, client=other)

    assert listed(admin_web.get("/admin/clients/client/?q=vip")) == {vip.id}
    assert listed(admin_web.get("/admin/clients/client/?operator_code=926")) == {other.id}
    assert listed(admin_web.get("/admin/mailings/mailing/?status=scheduled")) == {scheduled.id}
    assert listed(admin_web.get("/admin/mailings/mailing/?status=running")) == {running.id}
    assert listed(admin_web.get("/admin/mailings/message/?status=sent")) == {sent.id}
    assert listed(admin_web.get(f"/admin/mailings/message/?q={other.phone}")) == {pending.id}


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
            "operator_codes": "",
            "tags": "",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert b"has started" in response.content
    mailing.refresh_from_db()
    assert mailing.start_at < now


def mailing_form(**fields: str) -> dict[str, str]:
    return {
        "start_at_0": "2099-01-01",
        "start_at_1": "09:00:00",
        "end_at_0": "2099-01-02",
        "end_at_1": "09:00:00",
        "text": "Hello",
        "operator_codes": "",
        "tags": "",
        "send_window_start": "",
        "send_window_end": "",
        **fields,
    }


def test_a_mailing_made_in_the_console_goes_through_the_service(admin_web, caplog):
    """The filter is typed as lists, normalised like the API's, and the creation logged."""
    response = admin_web.post(
        "/admin/mailings/mailing/add/",
        mailing_form(operator_codes="926, 916 916", tags="vip, new"),
    )

    assert response.status_code == 302
    mailing = Mailing.objects.get()
    assert (mailing.operator_codes, mailing.tags) == (["916", "926"], ["new", "vip"])
    assert "mailing created" in caplog.text
    page = admin_web.get(f"/admin/mailings/mailing/{mailing.id}/change/")
    assert b'value="916, 926"' in page.content


def test_the_console_refuses_a_bad_operator_code_and_writes_nothing(admin_web):
    response = admin_web.post("/admin/mailings/mailing/add/", mailing_form(operator_codes="91"))

    assert response.status_code == 200
    assert b"exactly 3 digits" in response.content
    assert not Mailing.objects.exists()


def test_the_console_refuses_a_mailing_that_ends_in_the_past(admin_web):
    form = mailing_form(start_at_0="2000-01-01", end_at_0="2000-01-02")

    response = admin_web.post("/admin/mailings/mailing/add/", form)

    assert b"must be in the future" in response.content
    assert not Mailing.objects.exists()


def test_a_client_made_in_the_console_gets_its_operator_code_from_the_phone(admin_web, caplog):
    response = admin_web.post(
        "/admin/clients/client/add/",
        {"phone": "79031234567", "operator_code": "", "tag": "vip", "timezone": "UTC"},
    )

    assert response.status_code == 302
    client = Client.objects.get()
    assert (client.phone, client.operator_code, client.tag) == ("79031234567", "903", "vip")
    assert "client created" in caplog.text


def test_deleting_a_client_in_the_console_cancels_its_unsent_messages(admin_web):
    message = MessageFactory(mailing=MailingFactory())

    response = admin_web.post(f"/admin/clients/client/{message.client_id}/delete/", {"post": "yes"})

    assert response.status_code == 302
    message.refresh_from_db()
    assert (message.status, message.client_id) == ("cancelled", None)


def test_the_console_sets_a_send_window_with_two_times(admin_web):
    response = admin_web.post(
        "/admin/mailings/mailing/add/",
        mailing_form(send_window_start="22:00", send_window_end="06:00"),
    )

    assert response.status_code == 302
    window = Mailing.objects.get().send_window
    assert window is not None
    assert (str(window.start), str(window.end)) == ("22:00:00", "06:00:00")


def test_the_console_refuses_half_a_send_window(admin_web):
    response = admin_web.post(
        "/admin/mailings/mailing/add/", mailing_form(send_window_start="09:00")
    )

    assert b"both times of the send window" in response.content
    assert not Mailing.objects.exists()


def change_form(mailing, **changes) -> dict:
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
    return form | {
        **{name: fields[name] for name in ("text", "operator_codes", "tags")},
        "send_window_start": "",
        "send_window_end": "",
    }


def test_admin_refuses_to_change_a_running_mailings_text(admin_web):
    """The API and the admin obey one rule: once started, what was sent stays as it was."""
    now = timezone.now()
    mailing = MailingFactory(start_at=now - timedelta(minutes=1), text="Old")

    response = admin_web.post(
        f"/admin/mailings/mailing/{mailing.id}/change/", change_form(mailing, text="New")
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
        f"/admin/mailings/mailing/{mailing.id}/change/", change_form(mailing, end_at=new_end)
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
