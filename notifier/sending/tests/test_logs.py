"""What happened to mailing 42, message 9001, client 17? The logs alone must answer: every
line about one carries its id, in the web process and the workers alike, the README's
commands find them, and no line ever carries a secret."""

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from notifier.mailings.models import Mailing, Message
from notifier.testing.logs import (
    Lines,
    check_readme_log_commands,
    events,
    json_lines,
    readme_log_commands,
)
from notifier.testing.stack import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PASSWORD = "a-Password-never-logged-42"


@pytest.fixture
def web_logs(settings) -> Iterator[Lines]:
    """This process's log lines (the web side: API requests, services), as JSON."""
    with json_lines(secrets=[settings.PROBE_TOKEN, settings.SECRET_KEY]) as handler:
        yield handler


def about(found: list[dict], **ids: int) -> list[dict]:
    return [e for e in found if all(e.get(key) == value for key, value in ids.items())]


def names(found: list[dict]) -> set[str]:
    return {e["event"] for e in found}


def test_logs_follow_each_mailing_message_and_client_and_hide_secrets(
    stack, probe, web_logs, transactional_db, tmp_path
):
    stack.configure(LOG_FORMAT="json")
    probe.set_faults(garbage_rate=0.5)  # some attempts fail, with a body worth quoting
    get_user_model().objects.create_user(username="ops", password=PASSWORD)
    api = APIClient()
    token = api.post(
        "/api/auth/token/", {"username": "ops", "password": PASSWORD}, format="json"
    ).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    stack.start("worker")
    stack.start("beat")

    created = api.post(
        "/api/clients/",
        {"phone": "79160000017", "tag": "a"},
        format="json",
        HTTP_X_REQUEST_ID="r-1",
    )
    assert created["X-Request-ID"] == "r-1"
    client_id = created.json()["id"]
    assert api.patch(f"/api/clients/{client_id}/", {"tag": "b"}, format="json").status_code == 200
    for phone in ("79160000018", "79160000019"):
        api.post("/api/clients/", {"phone": phone}, format="json")
    response = api.post(
        "/api/mailings/",
        {
            "start_at": timezone.now().isoformat(),
            "end_at": (timezone.now() + timedelta(minutes=2)).isoformat(),
            "text": "Hello!",
            "filter": {},
        },
        format="json",
    )
    mailing_id = response.json()["id"]
    mailing = Mailing.objects.get(id=mailing_id)
    wait_for(
        lambda: Mailing.objects.get(id=mailing_id).finished_at is not None,
        timeout=60,
        what="the mailing to finish",
    )
    assert api.delete(f"/api/clients/{client_id}/").status_code == 204
    message = Message.objects.get(phone="79160000017")
    all_attempts = sum(Message.objects.values_list("attempts", flat=True))
    assert api.delete(f"/api/mailings/{mailing_id}/").status_code == 204
    stack.stop()

    found = events(web_logs.lines) + events(stack.log_text().splitlines())

    # By mailing: the request that created it, its start with the count, every attempt, its
    # end, its deletion.
    by_mailing = about(found, mailing_id=mailing.id)
    assert any(
        e["event"] == "request" and e["method"] == "POST" and e["status"] == 201 for e in by_mailing
    )
    assert {
        "mailing created",
        "mailing started",
        "send attempt",
        "mailing finished",
        "mailing deleted",
    } <= names(by_mailing)
    assert about(by_mailing, event="mailing started")[0]["messages"] == 3
    attempts = about(by_mailing, event="send attempt")
    assert len(attempts) == all_attempts

    # By message: every request to the API with its answer, and the status it led to.
    by_message = about(found, message_id=message.id, event="send attempt")
    assert len(by_message) == message.attempts
    for attempt in by_message:
        assert attempt["mailing_id"] == mailing.id
        assert attempt["http_status"] == 200
        assert attempt["latency_ms"] >= 0
        assert attempt["status_from"] == "sending"
    assert by_message[-1]["status_to"] == "sent"
    failures = [e for e in about(found, event="send attempt") if e["outcome"] == "transient"]
    assert failures, "the simulator was told to answer garbage half the time"
    assert all("HTTP 200" in e["error"] for e in failures)

    # By client: created, changed (which fields), every message to it, deleted.
    by_client = about(found, client_id=client_id)
    assert {"client created", "client changed", "send attempt", "client deleted"} <= names(
        by_client
    )
    assert about(by_client, event="client changed")[0]["fields"] == ["tag"]
    assert any(e["event"] == "request" and e["method"] == "DELETE" for e in by_client)
    created = about(found, event="client created")
    assert created, "the client's creation was not logged"
    assert created[0]["request_id"] == "r-1"

    # Never a secret, in any form.
    everything = "\n".join(web_logs.lines) + stack.log_text()
    for secret in (probe.token, token, PASSWORD):
        assert secret
        assert secret not in everything

    # The README's commands for compose, over what the containers would print: the JSON lines
    # of every process (debug off) and whatever else they write (Celery's banner). No Docker
    # here: `docker compose logs --no-log-prefix` is played by a script printing those lines.
    output = web_logs.lines + stack.log_text().splitlines()
    check_readme_log_commands(
        readme_log_commands(docker=True),
        log=output,
        ids={"mailing_id": mailing.id, "message_id": message.id, "client_id": client_id},
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{fake_docker(tmp_path, output)}:{os.environ['PATH']}"},
    )


def fake_docker(folder: Path, output: list[str]) -> Path:
    """A `docker` that answers `docker compose logs --no-log-prefix` with `output`."""
    (folder / "compose-output").write_text("".join(line + "\n" for line in output))
    bin_ = folder / "fake-bin"
    bin_.mkdir()
    script = bin_ / "docker"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$*" = "compose logs --no-log-prefix" ] || { echo "docker $*?" >&2; exit 2; }\n'
        f"exec cat {folder / 'compose-output'}\n"
    )
    script.chmod(0o755)
    return bin_
