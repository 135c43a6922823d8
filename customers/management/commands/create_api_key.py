"""Create an API key and print it, once: only its hash is stored."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers import services


class Command(BaseCommand):
    help = "Create an API key for `Authorization: Bearer <key>`. The key is printed once and never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the key is for (shown in the admin)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            api_key, raw = services.api_key_create(name=options["name"])
        except services.CustomersValidationError as error:
            raise CommandError(f"invalid name: {error.details['name'][0]}") from None
        self.stderr.write(f"API key {api_key.name!r} created. Copy it now: it is not stored and is shown only once.")
        self.stdout.write(raw)
