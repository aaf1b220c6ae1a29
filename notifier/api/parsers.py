"""The API's one body format: JSON, read with bounds before anything recurses.

Python's JSON parser (and everything that walks its result) recurses once per level of
nesting, so a body of 1,000 `[` ends in a RecursionError: the depth is measured on the text
first, with regular expressions that never recurse. The size is bounded before that by
Django (`DATA_UPLOAD_MAX_MEMORY_SIZE`: a 413).
"""

import json
import re
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# No body of this API nests deeper than 2; the margin is for callers' tools, not our needs.
MAX_DEPTH = 32
# A string, closed or not: from any quote the match succeeds, so scanning stays linear.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_INNERMOST = re.compile(r"\[[^\[\]{}]*+\]|\{[^\[\]{}]*+\}")
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth_within(text: str, limit: int) -> bool:
    """Whether the JSON `text` nests arrays and objects at most `limit` deep. Each pass
    removes every innermost container; brackets left after `limit` passes are deeper (or do
    not pair up, which is no valid JSON either)."""
    if text.count("[") + text.count("{") <= limit:
        return True
    text = _STRING.sub('""', text)  # brackets inside strings are text
    for _ in range(limit):
        text, removed = _INNERMOST.subn("", text)
        if not removed:
            break
    return _BRACKET.search(text) is None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class StrictJSONParser(JSONParser):
    """JSON that is bounded and that the database can store: nested at most `MAX_DEPTH`
    deep, in a known encoding, and without lone surrogates ("\\ud800"), which parse as
    valid JSON but cannot be encoded as UTF-8."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError("JSON parse error - the body is not text in its charset.") from exc
        if not json_depth_within(text, MAX_DEPTH):
            raise ParseError(
                f"JSON parse error - arrays and objects nested more than {MAX_DEPTH} deep."
            )
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParseError("JSON parse error - strings must be valid Unicode text.") from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        return data
