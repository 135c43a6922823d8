"""Recompute every billable metric's `has_pay_in_advance_charges` from the live charges.

    python manage.py sync_pay_in_advance_flags [--dry-run]

Ingestion announces a new event to invoicing when its metric's flag is set; plans' services keep
the flags as charges change, so this is for repair (a row edited by hand, a restored backup).
Safe to repeat: a second run changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from metrics.models import BillableMetric
from plans import services


class Command(BaseCommand):
    help = "Recompute billable metrics' pay-in-advance flags from the live charges."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report the flags that are wrong, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            priced = set(services._metrics_priced_in_advance(list(BillableMetric.objects.values_list("pk", flat=True))))
            wrong = [
                metric.code
                for metric in BillableMetric.objects.order_by("code")
                if metric.has_pay_in_advance_charges != (metric.pk in priced)
            ]
            self.stdout.write(f"{len(wrong)} flag(s) would change: {', '.join(wrong) or '-'}")
            return
        with transaction.atomic():
            changed = services.pay_in_advance_flags_sync()
        self.stdout.write(f"{changed} flag(s) changed")
