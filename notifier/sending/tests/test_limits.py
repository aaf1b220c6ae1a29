"""Admission control: the concurrency limit a worker finds, the shared rate limit and the
shared pause, first as units (the database store and a real Redis), then with two real worker
processes against the simulator's 429s, rate cap and concurrency capacity."""

import itertools
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from notifier.clients.tests.factories import ClientFactory
from notifier.integrations.probe.client import Delivered, Transient
from notifier.mailings.models import Mailing, Message
from notifier.sending.limits import Admission, ConcurrencyLimit, DatabaseStore, RedisStore, Store
from notifier.sending.services import mailing_create
from notifier.testing.bare import send_all
from notifier.testing.stack import Redis, wait_for

# -- the concurrency limit -------------------------------------------------------------------


def run_windows(
    limit: ConcurrencyLimit, windows: int, *, latency: float, busy: bool, start: float = 0.0
) -> None:
    """One answer per window, each a window and a half after the last."""
    for n in range(windows):
        now = start + (n + 1) * limit.window * 1.5
        limit.sample(latency, in_flight=limit.value if busy else 1, overloaded=False, now=now)


def test_the_limit_doubles_while_every_slot_is_busy_and_nothing_pushes_back():
    limit = ConcurrencyLimit(maximum=1000)
    assert limit.value == 20
    run_windows(limit, 4, latency=0.1, busy=True)
    assert limit.value == 320
    run_windows(limit, 10, latency=0.1, busy=True)
    assert limit.value == 1000  # never above SENDING_IN_FLIGHT


def test_the_limit_does_not_grow_when_the_work_and_not_the_limit_holds_it_back():
    limit = ConcurrencyLimit(maximum=1000)
    run_windows(limit, 20, latency=0.1, busy=False)
    assert limit.value == 20


def test_push_back_halves_the_limit_once_then_takes_a_tenth_off_then_it_grows_slowly():
    limit = ConcurrencyLimit(maximum=1000, initial=100)
    limit.sample(0.001, in_flight=100, overloaded=True, now=0.01)
    assert limit.value == 50  # at once, not at the end of the window
    for i in range(50):  # more 429s inside the same window: no further step
        limit.sample(0.001, in_flight=100, overloaded=True, now=0.02 + i * 0.001)
    limit.sample(0.05, in_flight=50, overloaded=False, now=0.11)  # the window ends
    assert limit.value == 50
    limit.sample(0.001, in_flight=50, overloaded=True, now=0.15)
    assert limit.value == 45
    limit.sample(0.05, in_flight=45, overloaded=False, now=0.25)
    run_windows(limit, 1, latency=0.05, busy=True, start=0.25)
    assert limit.value == 46  # no more doubling: a quarter of its square root


def test_a_latency_rising_well_above_its_baseline_shrinks_the_limit():
    limit = ConcurrencyLimit(maximum=1000, initial=100)
    run_windows(limit, 1, latency=0.1, busy=False)
    limit.sample(0.3, in_flight=1, overloaded=False, now=5.0)  # three times: a busy provider
    assert limit.value == 100
    limit = ConcurrencyLimit(maximum=1000, initial=100)
    run_windows(limit, 1, latency=0.1, busy=False)  # the baseline: 100 ms
    limit.sample(0.45, in_flight=100, overloaded=False, now=10.0)  # queueing at the provider
    assert limit.value == 50


# -- the shared store, on the database and on Redis ------------------------------------------


@pytest.fixture(params=["database", "redis"])
def store(request, tmp_path: Path):
    if request.param == "database":
        yield DatabaseStore()
        return
    server = Redis(tmp_path)
    server.start()
    yield RedisStore(server.url)
    server.stop()


@pytest.mark.django_db
def test_the_bucket_grants_at_most_its_burst_then_refills_at_the_rate(store: Store):
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        assert store.take(100, rate=200, burst=10) == 10
        assert store.take(100, rate=200, burst=10) == 0
        clock.shift(0.025)  # 5 tokens' worth
        assert store.take(100, rate=200, burst=10) == 5
        clock.shift(10)  # a long idle time refills only up to the burst
        assert store.take(100, rate=200, burst=10) == 10


@pytest.mark.django_db
def test_a_pause_is_shared_and_one_worker_probes_when_it_is_over(store: Store):
    with time_machine.travel(1_800_000_000, tick=False) as clock:
        first = Admission(in_flight=100, rate_limit=0, store=store, owner="a")
        second = Admission(in_flight=100, rate_limit=0, store=store, owner="b")
        assert first.admit(50, outstanding=0) == 50

        share = first.answered(
            Transient("HTTP 429", latency=0.01, retry_after=2.0, status=429), in_flight=10
        )
        assert share is not None
        share()
        clock.shift(1)
        assert first.admit(50, outstanding=0) == 0
        assert second.admit(50, outstanding=0) == 0

        clock.shift(1.5)  # over: one probe, from whoever asks first, and nothing else
        assert second.admit(50, outstanding=0) == 1
        assert first.admit(50, outstanding=0) == 0
        assert second.admit(50, outstanding=1) == 0

        resume = second.answered(Delivered(latency=0.01), in_flight=0)
        assert resume is not None
        resume()
        clock.shift(0.2)
        assert first.admit(50, outstanding=0) == 50


# -- with real workers -----------------------------------------------------------------------


def two_workers(stack, **settings: str) -> None:
    stack.configure(**settings)
    stack.start("worker", label="first")
    stack.start("worker", label="second")
    stack.start("beat")


def mailing_to(count: int, tag: str = "first") -> Mailing:
    """A mailing to `count` new clients (tagged `tag`), and only them."""
    ClientFactory.create_batch(count, tag=tag)
    now = timezone.now()
    return mailing_create(
        start_at=now, end_at=now + timedelta(minutes=5), text="limits", tags=[tag]
    )


def all_sent(mailing: Mailing, count: int) -> bool:
    return Message.objects.filter(mailing=mailing, status="sent").count() == count


def per_second(times: list[float]) -> list[int]:
    """How many of `times` fall in each one-second window, the window sliding by 0.1 s."""
    start, end = min(times), max(times)
    counts = []
    t = start
    while t + 1 <= end:
        counts.append(sum(1 for x in times if t <= x < t + 1))
        t += 0.1
    return counts


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_rate_limit_is_shared_by_every_worker_and_changes_with_a_restart(stack, probe):
    count = 1500
    probe.set_faults(latency_ms=10)
    two_workers(stack, SENDING_RATE_LIMIT="200")
    mailing = mailing_to(count)

    wait_for(lambda: all_sent(mailing, count), timeout=60, what="every message sent")

    times = [r["time"] for r in probe.requests()]
    windows = per_second(times)
    assert max(windows) <= 220
    assert count / (max(times) - min(times)) >= 180
    assert {"first", "second"} <= {
        label for label in ("first", "second") if "send attempt" in stack.log_text(label)
    }

    stack.stop()
    probe.reset()
    two_workers(stack, SENDING_RATE_LIMIT="50")
    second = mailing_to(300, tag="second")
    wait_for(lambda: all_sent(second, 300), timeout=60, what="the second mailing sent")
    times = [r["time"] for r in probe.requests()]
    assert max(per_second(times)) <= 55
    assert 300 / (max(times) - min(times)) >= 45


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_429_with_retry_after_pauses_every_worker_with_one_probe_per_pause(stack, probe):
    count = 300
    probe.set_faults(rate429=1.0, retry_after_seconds=2, latency_ms=20)
    two_workers(stack)
    mailing = mailing_to(count)
    wait_for(lambda: probe.report()["requests"] > 0, timeout=30, what="the first 429s")
    first_429 = min(r["time"] for r in probe.requests())
    time.sleep(5)
    probe.set_faults(rate429=0.0)
    switched_off = time.time()

    wait_for(lambda: all_sent(mailing, count), timeout=60, what="every message sent")

    # After what was in flight at the first 429: only probes, one per pause of 2 s.
    probes = [
        r["time"] for r in probe.requests() if first_429 + 0.5 < r["time"] < switched_off - 0.1
    ]
    assert 1 <= len(probes) <= 3
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(probes))
    statuses = Counter(Message.objects.filter(mailing=mailing).values_list("status", flat=True))
    assert statuses == {"sent": count}
    assert probe.report()["duplicates"] == {}
    assert "every worker pauses" in stack.log_text()


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_the_limit_converges_to_a_providers_capacity(stack, probe):
    """At most 50 requests at once, 429 beyond: the service delivers at least 0.8 of what a
    bare client with exactly 50 in flight gets, with under 10% of requests refused (each
    answer taking 100 ms, as a provider that queues would)."""
    count = 4000  # about ten seconds, the first of them finding the limit
    probe.set_faults(capacity=50, latency_ms=100)
    ceiling, _ = send_all(probe.url, probe.token or "", count=count, in_flight=50)
    probe.reset()
    probe.set_faults(capacity=50, latency_ms=100)
    two_workers(stack, SENDING_IN_FLIGHT="1000", SENDING_BACKOFF_BASE="0.05")
    mailing = mailing_to(count)

    wait_for(lambda: all_sent(mailing, count), timeout=120, what="every message sent")

    requests = probe.requests()
    delivered = [r["time"] for r in requests if r["answer"] == "200"]
    rate = count / (max(delivered) - min(r["time"] for r in requests))
    refused = sum(1 for r in requests if r["answer"] == "429")
    assert rate >= 0.8 * ceiling, (rate, ceiling)
    assert refused / len(requests) < 0.10


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_providers_rate_cap_is_followed(stack, probe):
    """300 requests a second at most, 429 with `Retry-After: 1` beyond: at least 240 are
    delivered a second, with under 10% of requests refused."""
    count = 3000
    probe.set_faults(rate_cap=300, retry_after_seconds=1)
    two_workers(stack, SENDING_IN_FLIGHT="1000")
    mailing = mailing_to(count)

    wait_for(lambda: all_sent(mailing, count), timeout=120, what="every message sent")

    requests = probe.requests()
    delivered = [r["time"] for r in requests if r["answer"] == "200"]
    assert count / (max(delivered) - min(delivered)) >= 240
    refused = sum(1 for r in requests if r["answer"] == "429")
    assert refused / len(requests) < 0.10
