"""A mailing's send window through the API: its shape, its bounds, and that it is frozen
once the mailing has started."""

from datetime import time, timedelta

import pytest
from django.utils import timezone

from notifier.mailings.models import Mailing
from notifier.mailings.tests.factories import MailingFactory

pytestmark = pytest.mark.django_db

URL = "/api/mailings/"


def body(**overrides):
    now = timezone.now()
    return {
        "start_at": (now + timedelta(hours=1)).isoformat(),
        "end_at": (now + timedelta(days=2)).isoformat(),
        "text": "Good morning",
        "filter": {"operator_codes": [], "tags": []},
        **overrides,
    }


def test_a_window_is_stored_and_shown_in_local_hours_and_minutes(api):
    response = api.post(URL, body(send_window={"start": "09:00", "end": "21:30"}), format="json")

    assert response.status_code == 201
    assert response.json()["send_window"] == {"start": "09:00", "end": "21:30"}
    mailing = Mailing.objects.get()
    assert (mailing.send_window_start, mailing.send_window_end) == (time(9), time(21, 30))


def test_an_overnight_window_is_accepted_and_no_window_means_any_time(api):
    night = api.post(URL, body(send_window={"start": "22:00", "end": "06:00"}), format="json")
    assert night.status_code == 201
    assert night.json()["send_window"] == {"start": "22:00", "end": "06:00"}

    anytime = api.post(URL, body(send_window=None), format="json")
    assert anytime.status_code == 201
    assert anytime.json()["send_window"] is None
    assert api.post(URL, body(), format="json").json()["send_window"] is None


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"start": "09:00", "end": "09:00"}, "send_window"),
        ({"start": "9am", "end": "18:00"}, "send_window.start"),
        ({"start": "09:00", "end": "24:00"}, "send_window.end"),
        ({"start": "09:00"}, "send_window.end"),
        ("09:00-18:00", "send_window"),
    ],
)
def test_a_bad_window_is_a_400_naming_it_and_creates_nothing(api, window, field):
    response = api.post(URL, body(send_window=window), format="json")

    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert any(name == field or name.startswith(field) for name in fields), fields
    assert not Mailing.objects.exists()


def test_the_window_of_a_started_mailing_is_frozen(api):
    now = timezone.now()
    mailing = MailingFactory(start_at=now - timedelta(minutes=1), end_at=now + timedelta(hours=1))

    response = api.patch(
        f"{URL}{mailing.id}/", {"send_window": {"start": "10:00", "end": "12:00"}}, format="json"
    )

    assert response.status_code == 400
    assert "send_window" in response.json()["error"]["fields"]
    mailing.refresh_from_db()
    assert mailing.send_window is None


def test_patch_changes_the_window_of_a_scheduled_mailing(api):
    created = api.post(URL, body(send_window={"start": "09:00", "end": "18:00"}), format="json")
    url = f"{URL}{created.json()['id']}/"

    changed = api.patch(url, {"send_window": {"start": "10:00", "end": "12:00"}}, format="json")
    assert changed.json()["send_window"] == {"start": "10:00", "end": "12:00"}
    cleared = api.patch(url, {"send_window": None}, format="json")
    assert cleared.json()["send_window"] is None


@pytest.mark.parametrize(
    ("window", "fields"), [({}, ["start", "end"]), ({"end": "12:00"}, ["start"])]
)
def test_a_patch_replaces_the_window_whole(api, window, fields):
    """`{"send_window": {}}` in a PATCH used to be a 500 (KeyError in the window's check)."""
    mailing = MailingFactory()

    response = api.patch(f"{URL}{mailing.id}/", {"send_window": window}, format="json")

    assert response.status_code == 400
    assert sorted(response.json()["error"]["fields"]) == sorted(
        f"send_window.{name}" for name in fields
    )
