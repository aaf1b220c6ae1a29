"""The contract of POST /v1/send/{msgId} with no faults on."""

import json

import pytest

from probe_sim.testing import ProbeProcess
from probe_sim.tests.support import TOKEN, message, post

pytestmark = pytest.mark.timeout(20)


def test_success_answers_code_0_and_records_the_delivery(probe: ProbeProcess) -> None:
    reply = post(probe, 42, message(42, phone=79160000042, text="Привет"))

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert json.loads(reply.body) == {"code": 0, "message": "OK"}
    [delivery] = probe.deliveries()
    assert delivery["id"] == 42
    assert delivery["phone"] == 79160000042
    assert delivery["text"] == "Привет"
    assert len(delivery["times"]) == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic cHJvYmU6dGVzdA==", "Bearer wrong-token", TOKEN],
    ids=["missing", "empty", "no-token", "blank-token", "basic", "wrong-token", "no-scheme"],
)
def test_missing_or_wrong_token_is_401(probe: ProbeProcess, authorization: str | None) -> None:
    reply = post(probe, 1, authorization=authorization)

    assert reply.status == 401
    assert probe.report()["by_answer"] == {"401": 1}
    assert probe.deliveries() == []


def test_bearer_scheme_is_case_insensitive(probe: ProbeProcess) -> None:
    assert post(probe, 1, authorization=f"bearer {TOKEN}").status == 200


GOOD = message(1)


@pytest.mark.parametrize(
    ("path_id", "payload"),
    [
        pytest.param(1, message(2), id="id-differs-from-path"),
        pytest.param(1, {"phone": 79161234567, "text": "x"}, id="missing-id"),
        pytest.param(1, {"id": 1, "text": "x"}, id="missing-phone"),
        pytest.param(1, {"id": 1, "phone": 79161234567}, id="missing-text"),
        pytest.param(1, {**GOOD, "id": True}, id="id-bool"),
        pytest.param(1, {**GOOD, "id": "1"}, id="id-string"),
        pytest.param(1, {**GOOD, "id": 1.0}, id="id-float"),
        pytest.param(1, {**GOOD, "phone": True}, id="phone-bool"),
        pytest.param(1, {**GOOD, "phone": "79161234567"}, id="phone-string"),
        pytest.param(1, {**GOOD, "phone": 2**63}, id="phone-beyond-int64"),
        pytest.param(1, {**GOOD, "text": 5}, id="text-int"),
        pytest.param(1, {**GOOD, "text": None}, id="text-null"),
        pytest.param(1, [1, 79161234567, "x"], id="json-array"),
        pytest.param(1, b"id=1&phone=79161234567&text=x", id="not-json"),
        pytest.param(1, b"", id="empty-body"),
        pytest.param(1, b'{"id": 1, "phone": 1, "text": "\xff"}', id="not-utf8"),
        pytest.param("abc", GOOD, id="path-id-not-a-number"),
        pytest.param(2**63, message(2**63), id="path-id-beyond-int64"),
    ],
)
def test_malformed_request_is_400_with_empty_body(
    probe: ProbeProcess, path_id: int | str, payload: object
) -> None:
    reply = post(probe, path_id, payload)

    assert reply.status == 400
    assert reply.body == b""
    report = probe.report()
    assert report["requests"] == 1
    assert report["deliveries"] == 0


def test_request_without_a_numeric_path_id_is_logged_with_no_id(probe: ProbeProcess) -> None:
    post(probe, "abc", GOOD)

    assert probe.requests() == [
        {"time": pytest.approx(probe.report()["first_request_at"]), "id": None, "answer": "400"}
    ]


def test_negative_and_large_int64_ids_are_valid(probe: ProbeProcess) -> None:
    for msg_id in (-5, 2**63 - 1):
        assert post(probe, msg_id, message(msg_id)).status == 200
    assert sorted(d["id"] for d in probe.deliveries()) == [-5, 2**63 - 1]
