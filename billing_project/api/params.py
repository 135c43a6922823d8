"""Query parameters read the same way by every API: datetimes, with the edge's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.request import Request

from .errors import Unprocessable

# PostgreSQL's widest UTC offset is +-15:59 (Python allows up to 23:59).
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


def datetime_param(request: Request, name: str) -> datetime | None:
    """The ISO 8601 query parameter `name` in UTC (naive means UTC), None when absent; 422
    `invalid_date` when it is not one, or its offset is beyond what any timezone uses."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise Unprocessable({name: ["invalid_date"]})
    if timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise Unprocessable({name: ["invalid_date"]})
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC instant
        raise Unprocessable({name: ["invalid_date"]}) from None
