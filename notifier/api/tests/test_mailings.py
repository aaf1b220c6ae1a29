from datetime import timedelta

import pytest
from django.utils import timezone

from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MailingFactory, MessageFactory

pytestmark = pytest.mark.django_db

URL = "/api/mailings/"


def iso(delta: timedelta) -> str:
    return (timezone.now() + delta).isoformat()


def valid(**overrides):
    return {
        "start_at": iso(timedelta(hours=1)),
        "end_at": iso(timedelta(hours=3)),
        "text": "Sale!",
        "filter": {"operator_codes": ["916", "926"], "tags": ["vip"]},
        **overrides,
    }


def started(**kwargs):
    now = timezone.now()
    return MailingFactory(
        start_at=now - timedelta(minutes=5), end_at=now + timedelta(hours=1), **kwargs
    )


def test_create_returns_the_representation(api):
    response = api.post(URL, valid(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "start_at",
        "end_at",
        "text",
        "filter",
        "send_window",
        "status",
        "created_at",
    }
    assert body["filter"] == {"operator_codes": ["916", "926"], "tags": ["vip"]}
    assert body["status"] == "scheduled"
    mailing = Mailing.objects.get(id=body["id"])
    assert (mailing.text, mailing.operator_codes, mailing.tags) == (
        "Sale!",
        ["916", "926"],
        ["vip"],
    )


def test_filter_is_optional_and_stored_as_a_set(api):
    no_filter = api.post(URL, valid(filter=None) | {}, format="json")
    absent = api.post(URL, {k: v for k, v in valid().items() if k != "filter"}, format="json")
    repeats = api.post(URL, valid(filter={"operator_codes": ["926", "916", "926"]}), format="json")

    assert no_filter.status_code == 400  # null is not an object
    assert absent.json()["filter"] == {"operator_codes": [], "tags": []}
    assert repeats.json()["filter"] == {"operator_codes": ["916", "926"], "tags": []}


def test_datetimes_keep_their_instant_whatever_the_offset(api):
    body = api.post(
        URL,
        valid(start_at="2099-01-01T12:00:00+03:00", end_at="2099-01-01T12:00:00-02:00"),
        format="json",
    ).json()

    assert body["start_at"] == "2099-01-01T09:00:00Z"
    assert body["end_at"] == "2099-01-01T14:00:00Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_at", "2099-01-01T12:00:00"),  # naive
        ("start_at", "tomorrow"),
        ("start_at", None),
        ("start_at", 1700000000),
        ("end_at", "2099-01-01T12:00:00"),
        ("end_at", "2099-13-01T12:00:00Z"),
        ("end_at", "0001-01-01T00:00:00+05:00"),  # before the representable range in UTC
        ("text", ""),
        ("text", "x" * 1001),
        ("text", None),
        ("text", 42),
        ("filter", "916"),
        ("filter", ["916"]),
        ("filter.operator_codes", "916"),
        ("filter.operator_codes.0", "91"),
        ("filter.operator_codes.1", 926),
        ("filter.tags.0", "x" * 65),
        ("filter.tags.0", None),
    ],
)
def test_invalid_field_is_a_400_naming_it(api, field, value):
    data = valid()
    if field.startswith("filter."):
        _, key, *index = field.split(".")
        data["filter"][key] = [value] if index == ["0"] else (["916", value] if index else value)
    else:
        data[field] = value

    response = api.post(URL, data, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [field]
    assert not Mailing.objects.exists()


def test_text_of_the_maximum_length_is_accepted(api):
    assert api.post(URL, valid(text="я" * 1000), format="json").status_code == 201


def test_end_must_be_after_start(api):
    response = api.post(
        URL, valid(start_at=iso(timedelta(hours=2)), end_at=iso(timedelta(hours=1))), format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["end_at"]


def test_end_must_be_in_the_future_on_create(api):
    response = api.post(
        URL,
        valid(start_at=iso(-timedelta(hours=2)), end_at=iso(-timedelta(hours=1))),
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "end_at": ["The end of the mailing must be in the future."]
    }


def test_status_is_derived_from_the_window_and_the_engine(api):
    now = timezone.now()
    scheduled = MailingFactory()
    running = started()
    over = MailingFactory(start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1))
    done = started(finished_at=now)
    cancelled = started(cancelled_at=now)

    listing = api.get(URL).json()["results"]
    by_status = {
        status: [m["id"] for m in api.get(URL, {"status": status}).json()["results"]]
        for status in Mailing.Status.values
    }

    assert {m["id"]: m["status"] for m in listing} == {
        scheduled.id: "scheduled",
        running.id: "running",
        over.id: "finished",
        done.id: "finished",
        cancelled.id: "cancelled",
    }
    assert by_status == {
        "scheduled": [scheduled.id],
        "running": [running.id],
        "finished": [over.id, done.id],
        "cancelled": [cancelled.id],
    }
    assert api.get(URL, {"status": "bogus"}).status_code == 400


def test_before_start_everything_may_change(api):
    mailing = MailingFactory()

    response = api.put(f"{URL}{mailing.id}/", valid(text="New"), format="json")

    assert response.status_code == 200
    assert response.json()["text"] == "New"
    assert response.json()["filter"] == {"operator_codes": ["916", "926"], "tags": ["vip"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start_at": "2099-01-01T00:00:00Z"}, "start_at"),
        ({"filter": {"tags": ["new"]}}, "filter.tags"),
        ({"filter": {"operator_codes": ["999"]}}, "filter.operator_codes"),
    ],
)
def test_after_start_the_start_and_filter_are_frozen(api, change, field):
    mailing = started(tags=["old"])

    response = api.patch(f"{URL}{mailing.id}/", change, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == [field]
    assert "has started" in error["fields"][field][0]
    assert Mailing.objects.get(id=mailing.id).tags == ["old"]


def test_after_start_text_and_end_may_change_and_same_values_are_not_changes(api):
    mailing = started(tags=["old"])
    new_end = timezone.now() + timedelta(hours=5)

    response = api.patch(
        f"{URL}{mailing.id}/",
        {
            "text": "Updated",
            "end_at": new_end.isoformat(),
            "start_at": mailing.start_at.isoformat(),
            "filter": {"tags": ["old"]},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    mailing.refresh_from_db()
    assert (mailing.text, mailing.end_at) == ("Updated", new_end)


def test_update_keeps_end_after_start(api):
    mailing = MailingFactory()

    response = api.patch(
        f"{URL}{mailing.id}/", {"end_at": mailing.start_at.isoformat()}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["end_at"]


def test_cancel_keeps_history_and_cancels_unsent_messages(api):
    mailing = started()
    sent = MessageFactory(mailing=mailing, status="sent", sent_at=timezone.now())
    pending = MessageFactory(mailing=mailing)

    response = api.post(f"{URL}{mailing.id}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert Message.objects.get(id=sent.id).status == "sent"
    assert Message.objects.get(id=pending.id).status == "cancelled"
    changed = api.patch(f"{URL}{mailing.id}/", {"text": "x"}, format="json")
    assert changed.status_code == 400


def test_delete_removes_the_mailing_and_its_messages(api):
    mailing = started()
    MessageFactory.create_batch(3, mailing=mailing)

    response = api.delete(f"{URL}{mailing.id}/")

    assert response.status_code == 204
    assert not Mailing.objects.exists()
    assert not Message.objects.exists()
    assert api.get(f"{URL}{mailing.id}/").status_code == 404


def test_unknown_mailing_is_a_404_everywhere(api):
    for path in ["", "stats/", "messages/", "cancel/"]:
        method = api.post if path == "cancel/" else api.get
        assert method(f"{URL}12345/{path}").status_code == 404, path
