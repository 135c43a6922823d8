"""Record the Stripe webhook endpoint Tollgate listens on, for a signing secret you already have:

    python manage.py stripe_webhook_endpoint --base-url https://billing.example.com --secret whsec_...

(`stripe listen --forward-to <printed url>` prints such a secret; so does an endpoint created in
the Stripe dashboard.) Prints the URL to give Stripe. Safe to repeat: one endpoint per secret.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments import services


class Command(BaseCommand):
    help = "Create or update the dj-stripe webhook endpoint for a known signing secret; print its URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default=settings.TOLLGATE_PUBLIC_URL, help="Public base URL of Tollgate")
        parser.add_argument(
            "--secret", default=settings.DJSTRIPE_WEBHOOK_SECRET, help="whsec_... (default DJSTRIPE_WEBHOOK_SECRET)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            endpoint = services.stripe_webhook_endpoint_register(base_url=options["base_url"], secret=options["secret"])
        except services.PaymentError as error:
            raise CommandError("a signing secret is required: --secret or DJSTRIPE_WEBHOOK_SECRET") from error
        self.stdout.write(endpoint.url)
