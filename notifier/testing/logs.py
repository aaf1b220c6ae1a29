"""The log lines a test's own process writes, rendered as in production (JSON), and parsed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from notifier.core import logging as notifier_logging


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
