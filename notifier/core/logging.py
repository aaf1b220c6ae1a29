"""Structured logs: one JSON object per event in production, a readable line in development.

Every log call goes through the standard library (Django's, Celery's and ours alike) and is
rendered by structlog, which merges the context bound with `bind(...)` (contextvars) into
every event underneath: the request id and the ids of the mailing, message or client being
handled, in the web process and the workers alike.

Whatever the format, a line is one line and safe to print: datetimes are ISO 8601, and the
control characters of any value (a request path, a tag) are escaped, so that nobody can forge
a line or drive the terminal of whoever reads it.
"""

import datetime
import logging
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars

__all__ = [
    "bind",
    "bound",
    "clear",
    "configure",
    "file_handler",
    "formatter",
    "get_logger",
    "logging_config",
]

bind = bind_contextvars
bound = bound_contextvars
clear = clear_contextvars
get_logger = structlog.stdlib.get_logger

# Keys whose values are secrets wherever they appear in an event.
SECRET_KEYS = frozenset({"password", "token", "authorization", "probe_token", "secret_key"})
REDACTED = "[redacted]"
_BEARER = r"(?i:(bearer\s+))"  # the scheme, kept; the credential after it is not


class Redactor:
    """The last line of defence: known secret values and bearer credentials are blanked out
    of every event, whatever logged them."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 6]
        # One pattern: it runs on every event (a send attempt has eight strings), first over
        # all of its strings at once, then over each only if that found something.
        # Longest first, so that a secret containing another is blanked whole; after
        # "Bearer " a known secret goes whole even if it has a space or a quote in it.
        literals = "|".join(map(re.escape, sorted(self.secrets, key=len, reverse=True)))
        token = rf"(?:{literals}|[^\s\"']+)" if literals else r"[^\s\"']+"
        self._pattern = re.compile(_BEARER + token + (f"|{literals}" if literals else ""))

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        strings = []
        for key, value in event.items():
            if key.lower() in SECRET_KEYS:
                event[key] = REDACTED  # an existing key: iterating on is safe
            elif isinstance(value, str):
                strings.append(value)
        # Most events have nothing to blank: one search over all their strings says so.
        if strings and self._pattern.search("\n".join(strings)):
            for key, value in event.items():
                if isinstance(value, str):
                    event[key] = self.scrub(value)
        return event

    def scrub(self, text: str) -> str:
        return self._pattern.sub(_redact, text)


def _redact(match: re.Match[str]) -> str:
    # A bearer credential keeps its scheme; a known secret goes whole.
    return (match.group(1) or "") + REDACTED


def _pre_chain(secrets: list[str]) -> list[Any]:
    """What every event goes through, from structlog or the standard library alike (the
    extras of a standard library record become keys; a structlog event has none)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Redactor(secrets),
    ]


def plain(value: object) -> object:
    """A value as a log line shows it when it is not a JSON type: a datetime (date, time) in
    ISO 8601, anything else as its repr (what structlog does by default)."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return repr(value)


# C0, DEL and C1: a terminal acts on them (ESC starts a sequence, CSI is one on its own).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# A traceback keeps its lines; anything else in it is escaped like the rest.
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_MULTILINE = frozenset({"exception", "stack"})


def _hex(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


class _Quoted:
    """A string the console renderer must show as its repr, which escapes control characters:
    the renderer writes a plain string (and the event) as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return repr(self.text)

    __str__ = __repr__  # the event's column renders with str()


def escape_control_characters(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    """For the console format: no raw control character in a key or a value (JSON escapes
    them itself), and datetimes in ISO 8601 there too."""
    for key, value in list(event.items()):
        if isinstance(value, str) and _CONTROL.search(value):
            if key in _MULTILINE:
                event[key] = _CONTROL_BUT_NEWLINE.sub(_hex, value)
            else:
                event[key] = _Quoted(value)
        elif isinstance(value, datetime.date | datetime.time):
            event[key] = value.isoformat()
        if _CONTROL.search(key):
            event[_CONTROL.sub(_hex, key)] = event.pop(key)
    return event


def formatter(*, fmt: str, secrets: list[str]) -> structlog.stdlib.ProcessorFormatter:
    """`fmt` is `json` (one object per line) or `console` (a readable line)."""
    processors: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if fmt == "json":
        # json.dumps escapes every control character (ensure_ascii: DEL and C1 too).
        processors.append(structlog.processors.JSONRenderer(default=plain))
    else:
        processors += [escape_control_characters, structlog.dev.ConsoleRenderer(colors=False)]
    return structlog.stdlib.ProcessorFormatter(
        processors=processors, foreign_pre_chain=_pre_chain(secrets)
    )


def file_handler(path: str) -> logging.FileHandler:
    """Appends every line to `path` (its folder made if need be). The processes of `make run`
    share the file, and never interleave parts of their lines on a local file system: the
    file is opened with O_APPEND, and each record reaches it in one write(2), the handler
    writing the line and then flushing it (a line longer than the buffer bypasses it)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return logging.FileHandler(path, encoding="utf-8")


def logging_config(*, fmt: str, level: str, secrets: list[str], file: str = "") -> dict[str, Any]:
    """A `LOGGING` dict for Django: `fmt` is `json` (production) or `console`, on stderr; with
    `file`, every line is also appended to it as JSON."""
    handlers: dict[str, Any] = {
        "console": {"class": "logging.StreamHandler", "formatter": "structured"}
    }
    if file:
        handlers["file"] = {"()": file_handler, "path": file, "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {"()": lambda: formatter(fmt=fmt, secrets=secrets)},
            "json": {"()": lambda: formatter(fmt="json", secrets=secrets)},
        },
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {
            # A line per task run (a tick every second) would drown what matters.
            **{
                name: {"level": "WARNING"}
                for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")
            },
            # The request log line is ours (with its context); Django's would repeat it.
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "WARNING"},
        },
    }


def configure(*, secrets: list[str]) -> None:
    """structlog's own loggers hand their events to the standard library's handlers."""
    # No line shows the caller's file and line, and finding them walks up the stack on every
    # record ("Optimization" in the standard library's logging HOWTO): a worker logs every
    # request to the external API. Thread and process ids stay: gunicorn's error log shows
    # the process.
    logging._srcfile = None
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_pre_chain(secrets),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
