"""Bill the recent events of pay-in-advance charges that have no fee yet (their announcement
was lost: broker down, task lost): what the 10-minute sweep does, on demand.

    python manage.py bill_missed_advance_events [--hours 24] [--dry-run]

Safe to repeat: an event billed already has a fee and is not found again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from invoicing import advance_charges


class Command(BaseCommand):
    help = "Bill recent pay-in-advance events that have no fee yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours", type=int, default=None, help=f"how far back (default {advance_charges.sweep_hours()})"
        )
        parser.add_argument("--dry-run", action="store_true", help="count the events, bill nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        result = advance_charges.fees_sweep_missed(
            hours=options["hours"], dry_run=options["dry_run"], actor="command:bill_missed_advance_events"
        )
        if options["dry_run"]:
            self.stdout.write(f"{result.events} event(s) without a fee would be billed")
            return
        self.stdout.write(
            f"{result.events} event(s) without a fee: {result.billed} billed ({result.fees} fee(s)), "
            f"{result.failed} failed"
        )
