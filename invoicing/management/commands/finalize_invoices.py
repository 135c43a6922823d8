"""Finalize drafts whose grace period has passed at an instant (default now), after refreshing
drafts that received late events: what the hourly task does, on demand.

    python manage.py finalize_invoices [--at ISO-8601]
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from invoicing import services

from .run_invoices import parse_instant


class Command(BaseCommand):
    help = "Refresh drafts with late events and finalize those past their grace period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--at", help="ISO-8601 instant with a timezone (default: now)")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = services.invoices_finalize_due(now=parse_instant(options["at"]), actor="command:finalize_invoices")
        self.stdout.write(
            f"{counts['refreshed']} drafts refreshed, {counts['finalized']} finalized, {counts['failed']} failed"
        )
