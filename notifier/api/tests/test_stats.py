from datetime import timedelta

import pytest
from django.utils import timezone

from notifier.mailings.tests.factories import MailingFactory, MessageFactory

pytestmark = pytest.mark.django_db

ZEROS = {"pending": 0, "sending": 0, "sent": 0, "failed": 0, "expired": 0, "cancelled": 0}


def make_messages(mailing, **counts):
    for status, n in counts.items():
        sent_at = timezone.now() if status == "sent" else None
        MessageFactory.create_batch(n, mailing=mailing, status=status, sent_at=sent_at)


def test_stats_list_has_every_mailing_every_status_and_totals(api):
    a = MailingFactory()
    b = MailingFactory()
    empty = MailingFactory()
    make_messages(a, sent=3, failed=1, pending=2)
    make_messages(b, sent=1, expired=2, cancelled=1, sending=1)

    body = api.get("/api/mailings/stats/").json()

    assert list(body) == ["count", "next", "previous", "totals", "results"]
    assert body["count"] == 3
    assert body["totals"] == {
        "mailings": 3,
        "messages": {
            "total": 11,
            "by_status": {
                "pending": 2,
                "sending": 1,
                "sent": 4,
                "failed": 1,
                "expired": 2,
                "cancelled": 1,
            },
        },
    }
    results = {r["id"]: r for r in body["results"]}
    assert results[a.id]["messages"] == {
        "total": 6,
        "by_status": {**ZEROS, "sent": 3, "failed": 1, "pending": 2},
    }
    assert results[b.id]["messages"]["by_status"] == {
        **ZEROS,
        "sent": 1,
        "expired": 2,
        "cancelled": 1,
        "sending": 1,
    }
    assert results[empty.id]["messages"] == {"total": 0, "by_status": ZEROS}
    assert set(results[a.id]) == {"id", "status", "start_at", "end_at", "messages"}
    assert results[a.id]["status"] == "scheduled"


def test_stats_list_is_paginated_and_totals_cover_all_pages(api):
    mailings = MailingFactory.create_batch(3)
    for mailing in mailings:
        make_messages(mailing, sent=1)

    page = api.get("/api/mailings/stats/", {"page_size": 2, "page": 2}).json()

    assert [r["id"] for r in page["results"]] == [mailings[2].id]
    assert page["totals"]["mailings"] == 3
    assert page["totals"]["messages"]["total"] == 3
    assert page["previous"] is not None
    assert page["next"] is None


def test_stats_list_filters_by_status(api):
    now = timezone.now()
    MailingFactory()
    over = MailingFactory(start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1))

    body = api.get("/api/mailings/stats/", {"status": "finished"}).json()

    assert [r["id"] for r in body["results"]] == [over.id]


def test_stats_totals_follow_the_lists_filters(api):
    """`?status=running` used to total every mailing, not the running ones."""
    now = timezone.now()
    running = MailingFactory(start_at=now - timedelta(minutes=5), end_at=now + timedelta(hours=1))
    over = MailingFactory(start_at=now - timedelta(hours=2), end_at=now - timedelta(hours=1))
    make_messages(running, sent=2, pending=1)
    make_messages(over, sent=5, expired=4)

    body = api.get("/api/mailings/stats/", {"status": "running"}).json()
    everything = api.get("/api/mailings/stats/").json()

    assert [r["id"] for r in body["results"]] == [running.id]
    assert body["totals"] == {
        "mailings": 1,
        "messages": {"total": 3, "by_status": {**ZEROS, "sent": 2, "pending": 1}},
    }
    assert everything["totals"]["mailings"] == 2
    assert everything["totals"]["messages"]["total"] == 12


def test_one_mailing_stats(api):
    mailing = MailingFactory()
    make_messages(mailing, sent=2, failed=1)
    make_messages(MailingFactory(), sent=5)

    body = api.get(f"/api/mailings/{mailing.id}/stats/").json()

    assert body == {
        "id": mailing.id,
        "status": "scheduled",
        "start_at": body["start_at"],
        "end_at": body["end_at"],
        "messages": {"total": 3, "by_status": {**ZEROS, "sent": 2, "failed": 1}},
    }


def test_stats_queries_do_not_grow_with_the_page(api, django_assert_max_num_queries):
    for mailing in MailingFactory.create_batch(20):
        make_messages(mailing, sent=1, pending=1)

    with django_assert_max_num_queries(8):
        response = api.get("/api/mailings/stats/", {"page_size": 20})

    assert len(response.json()["results"]) == 20


@pytest.mark.parametrize("status", ["", "SENT", "Running"])
def test_invalid_status_filter_is_a_400_listing_the_choices(api, status):
    response = api.get("/api/mailings/stats/", {"status": status})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "status": ["Choose one of: scheduled, running, finished, cancelled."]
    }
