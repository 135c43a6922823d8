"""Instants shown to people: in the organization's timezone, with the zone named."""

# Stored datetimes are UTC (ARCHITECTURE: invariants); finance staff read them in the zone the
# organization bills in, and the zone is always printed so a figure is never ambiguous. A list
# page reads the organization's zone once and draws its rows inside `display_timezone(...)`, so
# no row costs a query.

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

_DISPLAY_TIMEZONE: ContextVar[str | None] = ContextVar("display_timezone", default=None)


@contextmanager
def display_timezone(tz_name: str) -> Iterator[None]:
    token = _DISPLAY_TIMEZONE.set(tz_name or "UTC")
    try:
        yield
    finally:
        _DISPLAY_TIMEZONE.reset(token)


def current_display_timezone() -> str | None:
    return _DISPLAY_TIMEZONE.get()


def format_instant(instant: datetime | None, tz_name: str | None = None) -> str:
    """`2026-12-01 21:49 CET (Europe/Paris)`; "-" for nothing. Without tz_name, the zone set by
    display_timezone (UTC outside one)."""
    if instant is None:
        return "-"
    tz_name = tz_name or _DISPLAY_TIMEZONE.get() or "UTC"
    local = instant.astimezone(zoneinfo.ZoneInfo(tz_name))
    abbreviation = local.tzname() or ""
    if tz_name == "UTC" or abbreviation == tz_name:
        return f"{local:%Y-%m-%d %H:%M} {abbreviation or 'UTC'}"
    return f"{local:%Y-%m-%d %H:%M} {abbreviation} ({tz_name})"
