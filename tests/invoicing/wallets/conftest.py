"""The webhooks' loopback receiver, for alert.triggered."""

from tests.webhooks.conftest import receiver, webhook_settings  # noqa: F401  (fixtures)
