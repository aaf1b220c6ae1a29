"""The control API: the witness records, reset, fault validation, health."""

import json
import time
import urllib.error
import urllib.request

import pytest

from probe_sim.testing import ProbeProcess
from probe_sim.tests.support import message, post

pytestmark = pytest.mark.timeout(20)


def test_report_and_deliveries_count_each_delivery_and_duplicate(probe: ProbeProcess) -> None:
    assert post(probe, 1, message(1, phone=79160000001, text="sale")).status == 200
    assert post(probe, 1, message(1, phone=79160000001, text="sale")).status == 200
    assert post(probe, 2, message(2, phone=79160000002, text="sale")).status == 200
    assert post(probe, 3, message(4)).status == 400
    assert post(probe, 4, authorization=None).status == 401

    report = probe.report()
    assert report["requests"] == 5
    assert report["by_answer"] == {"200": 3, "400": 1, "401": 1}
    assert report["delivered"] == 2
    assert report["deliveries"] == 3
    assert report["duplicates"] == {"1": 2}
    assert report["first_request_at"] <= report["last_delivery_at"] <= report["last_request_at"]
    assert abs(report["last_request_at"] - time.time()) < 5  # wall clock

    deliveries = sorted(probe.deliveries(), key=lambda d: d["id"])
    assert [(d["id"], d["phone"], d["text"], len(d["times"])) for d in deliveries] == [
        (1, 79160000001, "sale", 2),
        (2, 79160000002, "sale", 1),
    ]
    assert deliveries[0]["times"] == sorted(deliveries[0]["times"])


def test_a_retry_that_changed_the_text_shows_as_a_separate_delivery(probe: ProbeProcess) -> None:
    post(probe, 1, message(1, text="first"))
    post(probe, 1, message(1, text="second"))

    assert sorted(d["text"] for d in probe.deliveries() if d["id"] == 1) == ["first", "second"]
    assert probe.report()["duplicates"] == {"1": 2}


def test_empty_report(probe: ProbeProcess) -> None:
    assert probe.report() == {
        "requests": 0,
        "by_answer": {},
        "delivered": 0,
        "deliveries": 0,
        "duplicates": {},
        "first_request_at": None,
        "last_request_at": None,
        "last_delivery_at": None,
    }


def test_requests_after_keeps_only_later_receipts(probe: ProbeProcess) -> None:
    post(probe, 1)
    time.sleep(0.01)
    middle = time.time()
    time.sleep(0.01)
    post(probe, 2, message(3))

    assert [(r["id"], r["answer"]) for r in probe.requests()] == [(1, "200"), (2, "400")]
    [later] = probe.requests(after=middle)
    assert (later["id"], later["answer"]) == (2, "400")
    assert later["time"] > middle


def test_reset_forgets_records_ends_an_outage_and_restores_startup_faults(
    probe: ProbeProcess,
) -> None:
    startup_faults = probe.faults()
    probe.set_faults(error_rate=1.0, reject_ids=[1])
    post(probe, 1)
    probe.outage(30)

    probe.reset()

    assert probe.faults() == startup_faults
    assert probe.report()["requests"] == 0
    assert post(probe, 1).status == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"error_rate": 1.5},
        {"error_rate": -0.1},
        {"error_rate": "0.5"},
        {"drop_rate": True},
        {"latency_ms": -1},
        {"hang": 1},
        {"retry_after_seconds": 1.5},
        {"reject_ids": 7},
        {"reject_ids": ["7"]},
        {"no_such_fault": 1},
    ],
    ids=str,
)
def test_bad_fault_values_are_refused_and_change_nothing(
    probe: ProbeProcess, changes: dict[str, object]
) -> None:
    before = probe.faults()

    with pytest.raises(ValueError, match=next(iter(changes))):
        probe.set_faults(**changes)

    assert probe.faults() == before


def _call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_put_and_patch_change_only_the_given_faults(probe: ProbeProcess) -> None:
    before = probe.set_faults(latency_ms=5)

    status, faults = _call(probe.control_url + "/faults", "PUT", b'{"error_rate": 0.1}')

    assert status == 200
    assert faults == {**before, "error_rate": 0.1}
    assert faults["latency_ms"] == 5


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"seconds": -1}', b'{"secs": 1}'])
def test_outage_with_bad_seconds_is_400(probe: ProbeProcess, body: bytes) -> None:
    status, _ = _call(probe.control_url + "/outage", "POST", body)

    assert status == 400


def test_health_on_both_ports(probe: ProbeProcess) -> None:
    api_root = probe.url.removesuffix("/v1")
    control_root = probe.control_url.removesuffix("/control")

    assert _call(api_root + "/health") == (200, {"status": "ok"})
    assert _call(control_root + "/health") == (200, {"status": "ok"})
