"""When messages go out, end to end (real worker, beat and simulator): retries until the end
of the window with the default backoff, and send windows in each client's local time."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.mailings.models import Mailing, Message
from notifier.mailings.windows import SendWindow
from notifier.sending.services import mailing_create
from notifier.testing.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def statuses(mailing: Mailing) -> dict[str, int]:
    rows = Message.objects.filter(mailing=mailing).values_list("status", flat=True)
    return {status: list(rows).count(status) for status in set(rows)}


def finished(mailing: Mailing) -> bool:
    mailing.refresh_from_db()
    return mailing.finished_at is not None


def test_retries_go_on_until_the_end_with_the_default_backoff(stack, probe):
    """30% 5xx, 10% garbage, 5% resets and a 15-second outage, with the backoff as shipped
    (1 s doubling to 60 s): a late failure is retried within the time left instead of
    expiring on a draw that lands after the end. Every message is sent, and nothing arrives
    at or after `end_at`."""
    ClientFactory.create_batch(300)
    probe.set_faults(error_rate=0.3, garbage_rate=0.1, drop_rate=0.05, latency_ms=20)
    stack.configure(SENDING_BACKOFF_BASE="1", SENDING_BACKOFF_MAX="60")
    stack.start("worker")
    stack.start("beat")
    now = timezone.now()
    mailing = mailing_create(start_at=now, end_at=now + timedelta(seconds=120), text="Hi")
    wait_for(lambda: statuses(mailing).get("sent", 0) >= 50, timeout=30, what="sending")
    probe.outage(15)

    wait_for(lambda: finished(mailing), timeout=150, what="the mailing to finish")

    assert statuses(mailing) == {"sent": 300}
    assert max(r["time"] for r in probe.requests()) < mailing.end_at.timestamp()
    assert max(Message.objects.values_list("attempts", flat=True)) >= 5


def window_from_now(zone: str, *, opens_in: timedelta, lasts: timedelta) -> SendWindow:
    """A window whose opening, in `zone`'s local time, is `opens_in` from now (to the minute)."""
    opening = datetime.now(ZoneInfo(zone)) + opens_in
    return SendWindow(opening.time().replace(second=0, microsecond=0), (opening + lasts).time())


def test_only_clients_whose_local_time_is_inside_the_window_receive_it(stack, probe):
    open_zone, closed_zone = "Asia/Almaty", "America/Mexico_City"  # about twelve hours apart
    window = window_from_now(open_zone, opens_in=timedelta(0), lasts=timedelta(hours=3))
    now = timezone.now()
    assert window.contains(now, ZoneInfo(open_zone))
    assert not window.contains(now, ZoneInfo(closed_zone))
    inside = ClientFactory.create_batch(20, timezone=open_zone)
    outside = ClientFactory.create_batch(10, timezone=closed_zone)
    stack.start("worker")
    stack.start("beat")

    mailing = mailing_create(
        start_at=now, end_at=now + timedelta(days=2), text="Good day", send_window=window
    )
    wait_for(lambda: statuses(mailing).get("sent") == 20, timeout=30, what="the open zone sent")
    time.sleep(3)  # ticks pass; nothing more may go

    assert {d["phone"] for d in probe.deliveries()} == {int(c.phone) for c in inside}
    waiting = Message.objects.filter(mailing=mailing, client__in=outside)
    opening = window.next_opening(now, ZoneInfo(closed_zone))
    assert {(m.status, m.next_attempt_at, m.attempts) for m in waiting} == {("pending", opening, 0)}


def test_a_window_opening_soon_opens_within_the_engines_start_precision(stack, probe):
    """The messages wait `pending` for the window; when it opens (within the next minute,
    at a whole minute of the clients' clock), they go within about a second."""
    zone = "Europe/Berlin"
    window = window_from_now(zone, opens_in=timedelta(minutes=1), lasts=timedelta(hours=1))
    ClientFactory.create_batch(10, timezone=zone)
    stack.start("worker")
    stack.start("beat")
    now = timezone.now()
    mailing = mailing_create(
        start_at=now, end_at=now + timedelta(hours=3), text="Opening", send_window=window
    )
    opening = window.next_opening(now, ZoneInfo(zone))
    assert opening > now

    wait_for(lambda: statuses(mailing).get("sent") == 10, timeout=90, what="the opening")

    first = min(r["time"] for r in probe.requests())
    assert opening.timestamp() <= first < opening.timestamp() + 2.0
    assert datetime.fromtimestamp(first, UTC) >= opening
