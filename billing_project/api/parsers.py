"""The API's JSON parser: the edge check of every request body, before any view sees it."""

# PostgreSQL text and jsonb hold neither NUL characters nor lone UTF-16 surrogates (both reach us
# only as JSON escapes), and a document nested thousands of levels deep exhausts Python's stack.
# Each is refused here, once for every endpoint: 400 for a document that is not usable JSON, 422
# `value_is_invalid` naming the field that holds the bad text. The raw bytes are scanned first (one
# C-speed regex search): only a body holding such an escape is walked in Python.

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from .errors import Unprocessable

# \u0000, or an escape in the surrogate range \ud800-\udfff (a pair is fine, a lone one is not).
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")


def bad_text(value: str) -> bool:
    """True for text PostgreSQL cannot store: a NUL, or a lone surrogate."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _first_bad_path(data: Any) -> list[str] | None:
    """The path (keys and list indexes) to the first key or string that is bad text; iterative,
    so depth costs no stack."""
    stack: list[tuple[list[str], Any]] = [([], data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if bad_text(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if bad_text(key):
                    return [*path, "key"]
                stack.append(([*path, key], item))
        elif isinstance(value, list):
            stack.extend(([*path, str(index)], item) for index, item in enumerate(value))
    return None


def lago_details(path: list[str]) -> dict[str, Any]:
    """Lago's error_details for a bad value at `path` under the request's root key:
    {"customer": {"name": ...}} -> {"name": [...]}; {"events": [.., {"code": ...}]} ->
    {"1": {"code": [...]}}."""
    below_root = path[1:] if len(path) > 1 else path
    if len(below_root) >= 2 and below_root[0].isdigit():
        return {below_root[0]: {below_root[1]: ["value_is_invalid"]}}
    return {below_root[0] if below_root else "body": ["value_is_invalid"]}


class LagoJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        raw = stream.read() if stream is not None else b""
        try:
            # DRF's json.loads hands the bytes to the standard library's, which reads them (its stub says str).
            data = json.loads(raw)  # type: ignore[arg-type]
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except ValueError as error:  # includes UnicodeDecodeError
            raise ParseError(f"JSON parse error - {error}") from None
        if _SUSPECT.search(raw):
            path = _first_bad_path(data)
            if path is not None:
                raise Unprocessable(lago_details(path))
        return data
