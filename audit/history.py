"""The change history (django-simple-history) names the API key behind an API change."""

# An API request authenticates with a key, not a user, so its history rows have no user; the
# key's name goes into the row's `history_change_reason` ("api:<name>"), which the activity log
# answers as its source and the console shows as who.

from __future__ import annotations

from typing import Any

API_REASON_PREFIX = "api:"


def name_the_api_key(sender: Any, *, history_instance: Any, **kwargs: Any) -> None:
    from simple_history.models import HistoricalRecords

    request = getattr(HistoricalRecords.context, "request", None)
    api_key = getattr(getattr(request, "user", None), "api_key", None)
    if api_key is not None and not history_instance.history_change_reason:
        history_instance.history_change_reason = f"{API_REASON_PREFIX}{api_key.name}"[:100]
