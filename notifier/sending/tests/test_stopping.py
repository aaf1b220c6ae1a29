"""When an operation that stops a running mailing returns, no request for it starts any more:
through the API and through the console alike, with a real worker claiming ahead of its
requests and the simulator as the witness of what arrived when."""

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client as WebClient
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message
from notifier.sending.services import mailing_create
from notifier.testing.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _console() -> WebClient:
    get_user_model().objects.create_superuser("root", "root@example.com", "root-Pass-1")
    web = WebClient()
    assert web.login(username="root", password="root-Pass-1")
    return web


def api_cancel(api, mailing: Mailing) -> int:
    return api.post(f"/api/mailings/{mailing.id}/cancel/").status_code


def api_delete(api, mailing: Mailing) -> int:
    return api.delete(f"/api/mailings/{mailing.id}/").status_code


def console_delete(api, mailing: Mailing) -> int:
    page = _console().post(f"/admin/mailings/mailing/{mailing.id}/delete/", {"post": "yes"})
    return page.status_code


def console_bulk_delete(api, mailing: Mailing) -> int:
    page = _console().post(
        "/admin/mailings/mailing/",
        {"action": "delete_selected", "_selected_action": [mailing.id], "post": "yes"},
    )
    return page.status_code


@pytest.mark.parametrize(
    ("stop", "answer"),
    [(api_cancel, 200), (api_delete, 204), (console_delete, 302), (console_bulk_delete, 302)],
)
def test_no_request_starts_after_a_stop_returns(
    stack, probe, api, settings, stop: Callable[..., int], answer: int
):
    ClientFactory.create_batch(400)
    # Requests overlap, and the worker claims ahead of them: with a long start window, a
    # claimed message may wait its turn for a second before its request starts.
    probe.set_faults(latency_ms=1000)
    settings.SENDING = {**settings.SENDING, "START_WINDOW": 2.0}
    stack.configure(SENDING_START_WINDOW="2", SENDING_IN_FLIGHT="10")
    stack.start("worker")
    stack.start("beat")
    now = timezone.now()
    mailing = mailing_create(start_at=now, end_at=now + timedelta(minutes=2), text="stop me")
    wait_for(
        lambda: Message.objects.filter(mailing=mailing, status="sent").count() >= 20,
        timeout=30,
        what="sending under way",
    )

    assert stop(api, mailing) == answer
    returned_at = time.time()
    time.sleep(3)  # longer than any claim may wait before its request starts

    arrivals = [r["time"] for r in probe.requests()]
    assert max(arrivals) < returned_at
    assert len(arrivals) < 400
