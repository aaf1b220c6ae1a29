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


def test_stats_queries_do_not_grow_with_the_page(api, django_assert_max_num_queries):
    for mailing in MailingFactory.create_batch(20):
        make_messages(mailing, sent=1, pending=1)

    with django_assert_max_num_queries(8):
        response = api.get("/api/mailings/stats/", {"page_size": 20})

    assert len(response.json()["results"]) == 20


def test_empty_status_filter_is_a_400_listing_the_choices(api):
    response = api.get("/api/mailings/stats/", {"status": ""})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "status": ["Choose one of: scheduled, running, finished, cancelled."]
    }
