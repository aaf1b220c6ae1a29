"""The log lines a test's own process writes, rendered as in production (JSON), and parsed."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from notifier.core import logging as notifier_logging

ROOT = Path(__file__).resolve().parents[2]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def json_lines(*, secrets: list[str]) -> Iterator[Lines]:
    """Every line logged at INFO or above while inside, as the JSON format writes it."""
    handler = Lines()
    handler.setFormatter(notifier_logging.formatter(fmt="json", secrets=secrets))
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.INFO
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.level = level


def events(lines: list[str]) -> list[dict]:
    """The JSON events among `lines`, skipping what is not one (Celery's start-up banner)."""
    parsed = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            parsed.append(event)
    return parsed


# The ids the README's commands look for.
README_IDS = {"mailing_id": 42, "message_id": 9001, "client_id": 17}
_README_ID = re.compile(r'"(?P<key>\w+_id)": (?P<id>\d+)\[')


def readme_log_commands(*, docker: bool) -> list[str]:
    """The README's commands (Operating, Logs) that print the lines about one id: those for
    `make run`, or with `docker` those for compose."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n### Logs\n", 1)[1].split("\n### ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        commands += [line for line in block.splitlines() if _README_ID.search(line)]
    return [c for c in commands if c.startswith("docker compose ") == docker]


def check_readme_log_commands(
    commands: list[str], *, log: list[str], ids: dict[str, int], cwd: Path, env: dict[str, str]
) -> None:
    """Each command, as the README prints it but for the ids, prints exactly the lines of
    `log` whose event carries that id: all of them, and nothing else."""
    assert {_README_ID.search(c)["key"] for c in commands} == set(README_IDS)  # type: ignore[index]
    for command in commands:
        found = _README_ID.search(command)
        assert found is not None
        key = found["key"]
        assert int(found["id"]) == README_IDS[key], command
        ours = command.replace(found.group(), f'"{key}": {ids[key]}[')
        result = subprocess.run(
            ["sh", "-c", ours], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
        expected = [line for line in log if _event(line).get(key) == ids[key]]
        assert expected, f"no line carries {key} {ids[key]}"
        assert result.stdout.splitlines() == expected, (command, result.stderr)


def _event(line: str) -> dict:
    found = events([line])
    return found[0] if found else {}
