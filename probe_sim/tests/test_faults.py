"""Each fault mode, switched on through the control endpoint of a running simulator."""

import contextlib
import http.client
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from probe_sim.testing import ProbeProcess
from probe_sim.tests.support import Reply, connect, is_ok, message, post

pytestmark = pytest.mark.timeout(20)


def test_error_rate_1_answers_5xx_and_delivers_nothing(probe: ProbeProcess) -> None:
    probe.set_faults(error_rate=1.0)

    statuses = [post(probe, i).status for i in range(30)]

    assert set(statuses) == {500, 502, 503}
    report = probe.report()
    assert report["deliveries"] == 0
    assert sum(report["by_answer"].values()) == 30


def test_garbage_rate_1_answers_200_without_code_0(probe: ProbeProcess) -> None:
    probe.set_faults(garbage_rate=1.0)

    replies = [post(probe, i) for i in range(30)]

    assert {r.status for r in replies} == {200}
    assert not any(is_ok(r.body) for r in replies)
    bodies = {r.body for r in replies}
    assert len(bodies) == 3  # not JSON, code 1, truncated JSON
    assert b'{"code": 1, "message": "busy"}' in bodies
    assert probe.report()["by_answer"] == {"garbage": 30}
    assert probe.deliveries() == []


def test_garbage_is_only_for_well_formed_requests(probe: ProbeProcess) -> None:
    probe.set_faults(garbage_rate=1.0)

    assert post(probe, 1, message(2)).status == 400


def test_drop_rate_1_closes_the_connection_without_an_answer(probe: ProbeProcess) -> None:
    probe.set_faults(drop_rate=1.0)

    with pytest.raises(ConnectionError):  # http.client.RemoteDisconnected or a reset
        post(probe, 1)

    assert probe.report()["by_answer"] == {"dropped": 1}
    assert probe.deliveries() == []


def test_gateway_fault_rates_stack_in_bands(probe: ProbeProcess) -> None:
    """drop 0.5 + error 0.5 cover every draw: each request is dropped or a 5xx, none delivered."""
    probe.set_faults(drop_rate=0.5, error_rate=0.5)

    for i in range(40):
        with contextlib.suppress(ConnectionError):  # a dropped one
            assert post(probe, i).status in {500, 502, 503}

    by_answer = probe.report()["by_answer"]
    assert by_answer["dropped"] > 0
    assert set(by_answer) <= {"dropped", "500", "502", "503"}


def test_latency_delays_the_answer(probe: ProbeProcess) -> None:
    probe.set_faults(latency_ms=300, jitter_ms=100)

    started = time.monotonic()
    reply = post(probe, 1)
    elapsed = time.monotonic() - started

    assert reply.status == 200
    assert 0.3 <= elapsed < 3


def test_delivery_counts_although_the_client_timed_out_during_latency(
    probe: ProbeProcess,
) -> None:
    """Delivery is decided before the latency sleep, so a timed-out retry makes a duplicate."""
    probe.set_faults(latency_ms=1000)
    with pytest.raises(TimeoutError):
        post(probe, 1, timeout=0.2)
    probe.set_faults(latency_ms=0)

    assert post(probe, 1).status == 200

    report = probe.report()
    assert report["deliveries"] == 2
    assert report["duplicates"] == {"1": 2}


def test_hang_makes_a_client_with_a_short_timeout_time_out(probe: ProbeProcess) -> None:
    probe.set_faults(hang=True, hang_seconds=5)
    with pytest.raises(TimeoutError):
        post(probe, 1, timeout=0.3)

    probe.set_faults(hang=False)
    assert post(probe, 2, timeout=0.3).status == 200


def test_outage_refuses_connections_then_recovers(probe: ProbeProcess) -> None:
    kept_alive = connect(probe)
    assert post(probe, 1, connection=kept_alive).status == 200

    started = time.monotonic()
    probe.outage(0.6)

    with pytest.raises(ConnectionRefusedError):
        post(probe, 2)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        post(probe, 3, connection=kept_alive)  # open connections are cut too
    assert probe.report()["requests"] == 1  # the control port stays up; nothing got through

    while True:
        try:
            reply = post(probe, 4)
            break
        except ConnectionRefusedError:
            assert time.monotonic() - started < 5, "the API port never came back"
            time.sleep(0.05)
    assert reply.status == 200
    assert time.monotonic() - started >= 0.55


def test_unauthorized_answers_401_even_to_the_right_token(probe: ProbeProcess) -> None:
    probe.set_faults(unauthorized=True)
    assert post(probe, 1).status == 401

    probe.set_faults(unauthorized=False)
    assert post(probe, 1).status == 200
    assert probe.report()["by_answer"] == {"200": 1, "401": 1}


def test_rejected_ids_always_get_400_with_empty_body(probe: ProbeProcess) -> None:
    probe.set_faults(reject_ids=[7])

    replies = [post(probe, 7) for _ in range(3)]

    assert {(r.status, r.body) for r in replies} == {(400, b"")}
    assert post(probe, 8).status == 200
    assert [d["id"] for d in probe.deliveries()] == [8]


def test_rate429_answers_too_many_requests_with_retry_after(probe: ProbeProcess) -> None:
    probe.set_faults(rate429=1.0, retry_after_seconds=3)

    reply = post(probe, 1)

    assert reply.status == 429
    assert reply.headers["Retry-After"] == "3"
    assert probe.report()["by_answer"] == {"429": 1}


def _statuses(probe: ProbeProcess, count: int) -> list[int]:
    conn = connect(probe)
    try:
        return [post(probe, i, connection=conn).status for i in range(count)]
    finally:
        conn.close()


def test_error_rate_lands_near_its_value_and_the_seed_repeats_it(probe: ProbeProcess) -> None:
    probe.set_faults(error_rate=0.3)
    statuses = _statuses(probe, 1000)

    failures = sum(status >= 500 for status in statuses)
    assert 240 <= failures <= 360
    report = probe.report()
    assert report["by_answer"].get("200") == 1000 - failures
    assert report["delivered"] == report["deliveries"] == 1000 - failures

    probe.reset()  # reseeds the fault RNG
    probe.set_faults(error_rate=0.3)
    assert _statuses(probe, 1000) == statuses


def _at_once(probe: ProbeProcess, ids: range) -> list[Reply]:
    """The requests all sent together, each on a connection of its own."""
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        return list(pool.map(lambda i: post(probe, i), ids))


def test_capacity_turns_away_what_is_beyond_it_at_once(probe: ProbeProcess) -> None:
    """With 10 served at once, 30 simultaneous requests: 10 delivered, 20 answered 429
    without waiting and without Retry-After."""
    probe.set_faults(capacity=10, latency_ms=500)

    started = time.monotonic()
    replies = _at_once(probe, range(1, 31))

    assert sorted(r.status for r in replies) == [200] * 10 + [429] * 20
    assert all("Retry-After" not in r.headers for r in replies if r.status == 429)
    assert probe.report()["by_answer"] == {"200": 10, "429": 20}
    assert time.monotonic() - started < 1.5  # one round of 500 ms, not three


def test_a_rate_cap_accepts_that_many_per_second_and_says_when_to_come_back(
    probe: ProbeProcess,
) -> None:
    probe.set_faults(rate_cap=20, retry_after_seconds=3)

    first = [post(probe, i) for i in range(1, 41)]
    assert [r.status for r in first].count(200) == 20
    refused = [r for r in first if r.status == 429]
    assert len(refused) == 20
    assert {r.headers["Retry-After"] for r in refused} == {"3"}
    time.sleep(1.05)
    again = [post(probe, i).status for i in range(41, 61)]
    assert again.count(200) >= 19  # the bucket refilled
