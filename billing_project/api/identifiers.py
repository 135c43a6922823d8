"""Identifiers that name a resource in a path (external ids, codes) must be one path segment:
`/customers/a/b` can never reach a customer "a/b" (a %2F arrives decoded as "/"), so such an id
is refused when it is given, rather than accepted and then unreachable."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


def is_path_segment(value: Any) -> bool:
    return not isinstance(value, str) or "/" not in value


def path_segment(value: Any) -> None:
    """DRF validator: Lago's `value_is_invalid` for an identifier holding a "/"."""
    if not is_path_segment(value):
        raise serializers.ValidationError("value_is_invalid", code="invalid")
