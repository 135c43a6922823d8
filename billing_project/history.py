"""Who made a change, for django-simple-history: a signed-in admin user, or nobody."""

# API requests authenticate with a key (customers.authentication.ApiClient), not a user:
# their changes are recorded without a user (the API's own audit names the key), instead of the
# history refusing the non-user and failing the request.

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model


def history_user(request: Any = None, **kwargs: Any) -> Any:
    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) else None
