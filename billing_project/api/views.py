"""Small helpers every app's API uses: the Lago request envelope and list answers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from .errors import BadRequest
from .pagination import LagoPagination


def unwrap(request: Request, root: str) -> dict[str, Any]:
    """Return `request.data[root]`; 400 as Lago does when the root key is missing or not an object."""
    data = request.data
    if not isinstance(data, dict) or not isinstance(data.get(root), dict):
        raise BadRequest(f"param is missing or the value is empty: {root}")
    return data[root]


def paginated(
    request: Request,
    queryset: Any,
    collection_name: str,
    serialize: Callable[[Any], dict[str, Any]] | Callable[[Iterable[Any]], list[dict[str, Any]]],
    many: bool = False,
    count: Callable[[Any], int] | None = None,
) -> Response:
    """Answer one page of `queryset` in Lago's envelope. `serialize` takes one object, or the
    whole page when `many` (so it can prefetch for the page in one query). `count` replaces
    queryset.count() for meta.total_count."""
    paginator = LagoPagination(count=count)
    view = type("V", (), {"collection_name": collection_name})
    page = paginator.paginate_queryset(queryset, request, view)
    # Ignored below: with `many`, serialize is the page's (it answers a list); mypy cannot tie the two.
    data: list[Any] = serialize(page) if many else [serialize(obj) for obj in page]  # type: ignore[assignment]
    return paginator.get_paginated_response(data)
