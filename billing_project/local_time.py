"""Instants shown to people: in the organization's timezone, with the zone named.

Stored datetimes are UTC (ARCHITECTURE: invariants); finance staff read them in the zone the
organization bills in, and the zone is always printed so a figure is never ambiguous.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime


def format_instant(instant: datetime | None, tz_name: str) -> str:
    """`2026-12-01 21:49 CET (Europe/Paris)`; "-" for nothing."""
    if instant is None:
        return "-"
    zone = zoneinfo.ZoneInfo(tz_name or "UTC")
    local = instant.astimezone(zone)
    abbreviation = local.tzname() or ""
    if tz_name in ("", "UTC") or abbreviation == tz_name:
        return f"{local:%Y-%m-%d %H:%M} {abbreviation or 'UTC'}"
    return f"{local:%Y-%m-%d %H:%M} {abbreviation} ({tz_name})"
