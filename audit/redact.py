"""Secrets never reach an API log: values under secret-looking keys are replaced."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
# Keys whose values are secrets, wherever they sit in a body or an answer: webhook signing
# secrets, the organization's hmac_key, API keys, passwords, tokens, card numbers, provider keys.
SECRET_KEY = re.compile(r"secret|password|passwd|token|api_?key|hmac|authorization|card_?number|cvc|private", re.I)
MAX_DEPTH = 20


def redact(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {
            redact(str(key), depth + 1): REDACTED
            if SECRET_KEY.search(str(key)) and item not in (None, "")
            else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, depth + 1) for item in value]
    if isinstance(value, str):
        # PostgreSQL's jsonb holds neither NUL nor lone surrogates (the API refused such a body).
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return value
