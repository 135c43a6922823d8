"""The portal tests reuse the loopback webhook receiver and the localstripe fixtures."""

from tests.payments.conftest import localstripe_url, stripe_api, stripe_customer  # noqa: F401
from tests.webhooks.conftest import receiver, webhook_settings  # noqa: F401
