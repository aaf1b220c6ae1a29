from datetime import timedelta

import pytest
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message
from notifier.mailings.tests.factories import MailingFactory, MessageFactory
from notifier.sending.queries import mailing_fan_out

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
        "started_at",
        "finished_at",
        "audience",
    }
    assert body["filter"] == {"operator_codes": ["916", "926"], "tags": ["vip"]}
    assert body["status"] == "scheduled"
    assert (body["started_at"], body["finished_at"], body["audience"]) == (None, None, None)
    mailing = Mailing.objects.get(id=body["id"])
    assert (mailing.text, mailing.operator_codes, mailing.tags) == (
        "Sale!",
        ["916", "926"],
        ["vip"],
    )


def test_filter_is_stored_as_a_set_and_empty_means_every_client(api):
    everyone = api.post(URL, valid(filter={}), format="json")
    repeats = api.post(URL, valid(filter={"operator_codes": ["926", "916", "926"]}), format="json")

    assert everyone.status_code == 201
    assert everyone.json()["filter"] == {"operator_codes": [], "tags": []}
    assert repeats.json()["filter"] == {"operator_codes": ["916", "926"], "tags": []}


@pytest.mark.parametrize("method", ["post", "put"])
def test_a_missing_filter_is_a_400_not_every_client(api, method):
    """A mailing without `filter` used to go to everyone, with no warning."""
    mailing = MailingFactory(tags=["vip"])
    url = URL if method == "post" else f"{URL}{mailing.id}/"
    body = {k: v for k, v in valid().items() if k != "filter"}

    response = getattr(api, method)(url, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "filter": [
            'Say who receives the mailing: {"operator_codes": [...], "tags": [...]}, '
            "or {} for every client."
        ]
    }
    assert Mailing.objects.count() == 1
    assert Mailing.objects.get().tags == ["vip"]


def test_a_null_filter_is_a_400(api):
    response = api.post(URL, valid(filter=None), format="json")

    assert list(response.json()["error"]["fields"]) == ["filter"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            valid(filter={"tag": ["vip"]}),
            {"filter.tag": ["Unknown field. Did you mean 'tags'?"]},
        ),
        (
            valid(filter={"operator_code": ["916"], "tags": ["vip"]}),
            {"filter.operator_code": ["Unknown field. Did you mean 'operator_codes'?"]},
        ),
        (
            {**valid(), "tags": ["vip"]},
            {"tags": ["Unknown field. Did you mean 'filter.tags'?"]},
        ),
        (
            {k: v for k, v in valid().items() if k != "filter"} | {"tags": ["vip"]},
            {
                "tags": ["Unknown field. Did you mean 'filter.tags'?"],
                "filter": [
                    'Say who receives the mailing: {"operator_codes": [...], "tags": [...]}, '
                    "or {} for every client."
                ],
            },
        ),
        (valid(status="cancelled"), {"status": ["Read-only field: the service sets it."]}),
        (valid(priority=1), {"priority": ["Unknown field."]}),
    ],
)
def test_a_typo_in_the_body_is_a_400_naming_it_not_a_mailing_to_everyone(api, body, fields):
    """`"filter": {"tag": ["vip"]}` used to answer 201 with an empty filter: every client."""
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == fields
    assert not Mailing.objects.exists()


def test_a_typo_in_a_patch_changes_nothing(api):
    mailing = MailingFactory(tags=["vip"])

    response = api.patch(f"{URL}{mailing.id}/", {"filter": {"tag": ["all"]}}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["filter.tag"]
    assert Mailing.objects.get().tags == ["vip"]


def test_the_audience_and_start_show_once_the_mailing_has_started(api):
    """The answer says how many clients a mailing reached, read from its statistics."""
    ClientFactory.create_batch(3, tag="vip")
    ClientFactory(tag="other")
    created = api.post(
        URL,
        valid(start_at=iso(-timedelta(seconds=1)), filter={"tags": ["vip"]}),
        format="json",
    ).json()
    before = api.get(f"{URL}{created['id']}/").json()

    mailing_fan_out(mailing_id=created["id"], now=timezone.now())
    after = api.get(f"{URL}{created['id']}/").json()
    listed = api.get(URL).json()["results"]

    assert (before["audience"], before["started_at"]) == (None, None)
    assert after["audience"] == 3
    assert after["started_at"] is not None
    assert [m["audience"] for m in listed] == [3]


def test_the_list_reads_audiences_in_a_bounded_number_of_queries(
    api, django_assert_max_num_queries
):
    for mailing in [started(fanned_out_at=timezone.now()) for _ in range(20)]:
        MessageFactory.create_batch(2, mailing=mailing)

    with django_assert_max_num_queries(6):
        results = api.get(URL, {"page_size": 20}).json()["results"]

    assert [m["audience"] for m in results] == [2] * 20


def test_a_finished_mailing_shows_when_it_finished(api):
    now = timezone.now()
    mailing = started(fanned_out_at=now - timedelta(minutes=4), finished_at=now)

    body = api.get(f"{URL}{mailing.id}/").json()

    assert body["status"] == "finished"
    assert body["finished_at"] == now.isoformat().replace("+00:00", "Z")


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


FROZEN = (
    "its start, text, filter and send window stay as its messages were sent with them; "
    "only its end time (end_at) can change."
)


def finished(**kwargs):
    now = timezone.now()
    return MailingFactory(
        start_at=now - timedelta(hours=2),
        end_at=now - timedelta(hours=1),
        fanned_out_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=1),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"text": "New text"}, ["text"]),
        ({"start_at": "2099-01-01T00:00:00Z"}, ["start_at"]),
        ({"filter": {"tags": ["new"]}}, ["filter.tags"]),
        ({"filter": {"operator_codes": ["999"], "tags": ["old"]}}, ["filter.operator_codes"]),
        ({"filter": {}}, ["filter.tags"]),
        ({"text": "New", "filter": {"tags": []}}, ["filter.tags", "text"]),
    ],
)
@pytest.mark.parametrize(("make", "state"), [(started, "started"), (finished, "finished")])
def test_once_started_what_was_sent_is_frozen(api, make, state, change, fields):
    """A running mailing's text used to be accepted: the simulator saw 100 messages with the
    old text and 900 with the new one. A finished one's too."""
    mailing = make(text="Old text", tags=["old"])

    response = api.patch(f"{URL}{mailing.id}/", change, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {field: [f"The mailing has {state}: {FROZEN}"] for field in fields}
    mailing.refresh_from_db()
    assert (mailing.text, mailing.tags) == ("Old text", ["old"])


@pytest.mark.parametrize("make", [started, finished])
def test_once_started_the_end_may_move_and_same_values_are_not_changes(api, make):
    """A finished mailing's end may move too, to reopen its window for a retry."""
    mailing = make(tags=["old"])
    new_end = timezone.now() + timedelta(hours=5)

    response = api.put(
        f"{URL}{mailing.id}/",
        {
            "text": mailing.text,
            "end_at": new_end.isoformat(),
            "start_at": mailing.start_at.isoformat(),
            "filter": {"tags": ["old"]},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    mailing.refresh_from_db()
    assert mailing.end_at == new_end


def test_a_cancelled_mailing_changes_nothing_not_even_its_end(api):
    mailing = started(cancelled_at=timezone.now())
    end = mailing.end_at

    response = api.patch(f"{URL}{mailing.id}/", {"end_at": iso(timedelta(hours=9))}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "end_at": ["The mailing was cancelled: it can no longer be changed."]
    }
    mailing.refresh_from_db()
    assert mailing.end_at == end


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


def test_cancel_takes_no_body_and_says_so(api):
    mailing = started()

    response = api.post(f"{URL}{mailing.id}/cancel/", {"reason": "typo"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"reason": ["Unknown field."]}
    assert Mailing.objects.get(id=mailing.id).cancelled_at is None


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
