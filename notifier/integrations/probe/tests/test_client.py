"""The Probe client: every answer maps to one typed outcome (a table), and the real client
against the simulator on loopback."""

import asyncio
import time

import pytest

from notifier.integrations.probe.client import (
    Delivered,
    Outcome,
    Permanent,
    ProbeClient,
    Transient,
    Unauthorized,
    classify,
)
from probe_sim.testing import ProbeProcess

WRONG_TOKEN = "wrong-token-b7e205"
PHONE = "79161234567"
HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"

# -- classify: the table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "kind", "expected_retry_after"),
    [
        (200, b'{"code": 0, "message": "OK"}', None, Delivered, None),
        (200, b'{"code": 1, "message": "busy"}', None, Transient, None),
        (200, b"<html><body>Service Unavailable</body></html>", None, Transient, None),
        (200, b'{"code": 0, "mess', None, Transient, None),
        (200, b"", None, Transient, None),
        (200, b"[0]", None, Transient, None),
        (200, b'[{"code": 0}]', None, Transient, None),
        (200, b'{"message": "OK"}', None, Transient, None),
        (200, b'{"code": "0"}', None, Transient, None),
        # JSON `false` is not the integer 0, though Python's `False == 0`.
        (200, b'{"code": false}', None, Transient, None),
        (400, b"", None, Permanent, None),
        (401, b"", None, Unauthorized, None),
        (403, b"forbidden", None, Unauthorized, None),
        (404, b"", None, Permanent, None),
        (408, b"", None, Transient, None),
        (429, b"", "7", Transient, 7.0),
        (429, b"", None, Transient, None),
        (500, b"simulated server error", None, Transient, None),
        (502, b"", None, Transient, None),
        (503, b"", "2", Transient, 2.0),
        (503, b"", "1.5", Transient, 1.5),
        (503, b"", HTTP_DATE, Transient, None),
        (503, b"", "soon", Transient, None),
        (503, b"", "-5", Transient, None),
    ],
)
def test_classify(status, body, retry_after, kind, expected_retry_after):
    outcome = classify(status, body, retry_after, 0.25)
    assert type(outcome) is kind
    assert outcome.latency == 0.25
    if isinstance(outcome, Transient):
        assert outcome.retry_after == expected_retry_after


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, b"", "HTTP 400"),
        (401, b"", "HTTP 401"),
        (500, b"boom", "HTTP 500: boom"),
    ],
)
def test_classify_names_the_status_in_the_reason(status, body, reason):
    outcome = classify(status, body, None, 0)
    assert not isinstance(outcome, Delivered)
    assert outcome.reason == reason


def test_classify_quotes_only_an_excerpt_of_a_huge_body():
    outcome = classify(200, b"<html>" + b"x" * 100_000, None, 0)
    assert isinstance(outcome, Transient)
    assert len(outcome.reason) < 400


# -- the real client against the simulator ---------------------------------------------------


def _check_no_secret(outcome: Outcome, token: str) -> None:
    for secret in (token, WRONG_TOKEN):
        assert secret not in repr(outcome)


def send(
    probe: ProbeProcess,
    *,
    token: str | None = None,
    message_id: int = 1,
    phone: str = PHONE,
    text: str = "Hello!",
    timeout: float = 5.0,
) -> Outcome:
    async def go() -> Outcome:
        async with ProbeClient(
            base_url=probe.url, token=token or probe.token or "", max_connections=4
        ) as client:
            return await client.send(message_id=message_id, phone=phone, text=text, timeout=timeout)

    outcome = asyncio.run(go())
    _check_no_secret(outcome, probe.token or "")
    return outcome


def test_success_is_delivered(probe):
    outcome = send(probe, message_id=11)
    assert isinstance(outcome, Delivered)
    assert probe.report()["delivered"] == 1


def test_body_is_exactly_id_phone_as_integer_and_text(probe):
    """The simulator answers 400 to any other shape; its witness shows what arrived."""
    text = "Скидка 10% — только сегодня! 👋"
    outcome = send(probe, message_id=123456789012, phone="79031112233", text=text)
    assert isinstance(outcome, Delivered)
    [delivery] = probe.deliveries()
    assert delivery["id"] == 123456789012
    assert delivery["phone"] == 79031112233
    assert type(delivery["phone"]) is int
    assert delivery["text"] == text
    assert len(delivery["times"]) == 1


def test_a_base_url_with_a_trailing_slash_works(probe):
    async def go() -> Outcome:
        async with ProbeClient(
            base_url=probe.url + "/", token=probe.token or "", max_connections=1
        ) as c:
            return await c.send(message_id=5, phone=PHONE, text="x", timeout=5)

    assert isinstance(asyncio.run(go()), Delivered)


def test_many_requests_share_a_small_pool(probe):
    """More sends than connections all complete: the pool queues, it does not fail."""

    async def go() -> list[Outcome]:
        async with ProbeClient(
            base_url=probe.url, token=probe.token or "", max_connections=3
        ) as client:
            return await asyncio.gather(
                *(client.send(message_id=i, phone=PHONE, text="x", timeout=5) for i in range(1, 31))
            )

    probe.set_faults(latency_ms=20)
    outcomes = asyncio.run(go())
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert probe.report()["delivered"] == 30


def test_wrong_token_is_unauthorized(probe):
    outcome = send(probe, token=WRONG_TOKEN)
    assert isinstance(outcome, Unauthorized)
    assert outcome.reason.startswith("HTTP 401")
    assert probe.report()["deliveries"] == 0


def test_expired_credentials_are_unauthorized(probe):
    probe.set_faults(unauthorized=True)
    assert isinstance(send(probe), Unauthorized)


def test_rejected_id_is_permanent(probe):
    probe.set_faults(reject_ids=[77])
    outcome = send(probe, message_id=77)
    assert isinstance(outcome, Permanent)
    assert outcome.reason == "HTTP 400"
    assert isinstance(send(probe, message_id=78), Delivered)


def test_server_errors_are_transient(probe):
    probe.set_faults(error_rate=1.0)
    for message_id in range(1, 6):
        outcome = send(probe, message_id=message_id)
        assert isinstance(outcome, Transient)
        assert outcome.reason.startswith(("HTTP 500", "HTTP 502", "HTTP 503"))
    assert probe.report()["deliveries"] == 0


def test_garbage_with_status_200_is_transient(probe):
    """HTML, `{"code": 1}` and truncated JSON, all with 200: none counts as sent."""

    async def go() -> list[Outcome]:
        async with ProbeClient(
            base_url=probe.url, token=probe.token or "", max_connections=1
        ) as client:
            return [
                await client.send(message_id=i, phone=PHONE, text="x", timeout=5)
                for i in range(1, 31)
            ]

    probe.set_faults(garbage_rate=1.0)
    outcomes = asyncio.run(go())
    for outcome in outcomes:
        _check_no_secret(outcome, probe.token or "")
        assert isinstance(outcome, Transient)
        assert outcome.reason.startswith("HTTP 200")
    assert probe.report()["by_answer"] == {"garbage": 30}
    reasons = {o.reason for o in outcomes if isinstance(o, Transient)}
    assert any("not JSON" in r for r in reasons)
    assert any("without code 0" in r for r in reasons)


def test_dropped_connection_is_transient(probe):
    probe.set_faults(drop_rate=1.0)
    outcome = send(probe)
    assert isinstance(outcome, Transient)
    assert probe.report()["by_answer"] == {"dropped": 1}


def test_a_hung_api_times_out_well_before_the_hang_ends(probe):
    probe.set_faults(hang=True, hang_seconds=5)
    started = time.monotonic()
    outcome = send(probe, timeout=0.3)
    elapsed = time.monotonic() - started
    assert isinstance(outcome, Transient)
    assert "timeout" in outcome.reason
    assert 0.25 <= elapsed < 1.5


def test_outage_is_transient_connection_refused(probe):
    probe.outage(10)
    started = time.monotonic()
    outcome = send(probe, timeout=2.0)
    assert isinstance(outcome, Transient)
    assert "timeout" not in outcome.reason  # refused at once, not waited for
    assert time.monotonic() - started < 1.0
    assert probe.report()["requests"] == 0


def test_too_many_requests_carries_retry_after(probe):
    probe.set_faults(rate429=1.0, retry_after_seconds=3)
    outcome = send(probe)
    assert isinstance(outcome, Transient)
    assert outcome.reason.startswith("HTTP 429")
    assert outcome.retry_after == 3.0
