"""Lago's item metadata (plans, credit notes, wallets): a flat object of string keys to strings or
null, at most 50 keys, keys up to 100 characters, values up to 255 (app/models/metadata/
item_metadata.rb). Pure functions; each owner's service stores the result on its row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing_project.errors import DomainError

MAX_KEYS = 50
MAX_KEY_LENGTH = 100
MAX_VALUE_LENGTH = 255


def metadata_clean(value: Any) -> dict[str, str | None]:
    """`value` checked as Lago does; a refusal is 422 `metadata: [value_is_invalid]`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > MAX_KEYS:
        raise DomainError.field("metadata", "value_is_invalid")
    cleaned: dict[str, str | None] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise DomainError.field("metadata", "value_is_invalid")
        if item is not None and (isinstance(item, Mapping | list | bool)):
            raise DomainError.field("metadata", "value_is_invalid")
        text = None if item is None else str(item)
        if text is not None and len(text) > MAX_VALUE_LENGTH:
            raise DomainError.field("metadata", "value_is_invalid")
        cleaned[key] = text
    return cleaned


def metadata_set(current: Mapping[str, Any] | None, value: Any, *, merge: bool) -> dict[str, str | None]:
    """POST replaces the object, PATCH merges the keys given into it (at most 50 in the end)."""
    cleaned = metadata_clean(value)
    result = {**(current or {}), **cleaned} if merge else cleaned
    if len(result) > MAX_KEYS:
        raise DomainError.field("metadata", "value_is_invalid")
    return result


def metadata_without(current: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    """DELETE /metadata/{key}: the object without `key` (a missing key changes nothing)."""
    return {name: value for name, value in (current or {}).items() if name != key}
