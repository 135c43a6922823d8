"""Lago's list envelope: `{"<resources>": [...], "meta": {current_page, next_page, ...}}`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from rest_framework.pagination import BasePagination
from rest_framework.response import Response

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_OFFSET = 2**62  # far beyond any table, far below PostgreSQL's bigint OFFSET limit


def _positive_int(raw: str | None, default: int) -> int:
    try:
        value = int(raw) if raw not in (None, "") else default
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


class LagoPagination(BasePagination):
    """`page` and `per_page` (default 20, max 100). A page past the end is an empty list.

    The view names the envelope with `collection_name` ("customers", "invoices", ...). `count`
    replaces queryset.count() for tables too big to count exactly (metrics' capped count).
    """

    def __init__(self, count: Callable[[Any], int] | None = None) -> None:
        self.count = count

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any]:
        self.page = _positive_int(request.query_params.get("page"), 1)
        self.per_page = min(_positive_int(request.query_params.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
        self.total_count = self.count(queryset) if self.count is not None else queryset.count()
        self.total_pages = math.ceil(self.total_count / self.per_page) if self.total_count else 0
        self.collection_name = getattr(view, "collection_name", "data")
        offset = (self.page - 1) * self.per_page
        # Past the end: no query. A huge page would overflow PostgreSQL's bigint OFFSET (a
        # `count` may be an estimate, so its pages past the count are still read, up to the cap).
        if offset > MAX_OFFSET or (self.count is None and offset >= self.total_count):
            return []
        return list(queryset[offset : offset + self.per_page])

    def meta(self) -> dict[str, Any]:
        return {
            "current_page": self.page,
            "next_page": self.page + 1 if self.page < self.total_pages else None,
            "prev_page": self.page - 1 if self.page > 1 else None,
            "total_pages": self.total_pages,
            "total_count": self.total_count,
        }

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response({self.collection_name: data, "meta": self.meta()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "data": schema,
                "meta": {
                    "type": "object",
                    "properties": {
                        "current_page": {"type": "integer"},
                        "next_page": {"type": "integer", "nullable": True},
                        "prev_page": {"type": "integer", "nullable": True},
                        "total_pages": {"type": "integer"},
                        "total_count": {"type": "integer"},
                    },
                },
            },
        }
