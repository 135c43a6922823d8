"""Bill everything due at an instant (default now): a finance rerun, safe to repeat.

    python manage.py run_invoices [--at ISO-8601] [--customer EXT_ID] [--subscription EXT_ID] [--dry-run] [--async]

Inline by default (one transaction per subscription-period); --async fans one Celery task out per
subscription-period. Either way the activations, terminations and plan changes due at the instant
are applied first. A period billed already is skipped (the database's unique constraint), so a
second run for the same instant creates nothing. --dry-run lists what is due, every missed period
oldest first, and writes nothing (a plan change not yet applied shows up once it is).
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from invoicing import runs, selectors
from plans.subscriptions import subscriptions_activate_due


def parse_instant(value: str | None) -> datetime:
    if not value:
        return timezone.now()
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--at: not an ISO-8601 instant: {value!r}") from None
    if instant.tzinfo is None:
        raise CommandError("--at needs a timezone (e.g. 2026-02-01T00:10:00Z)")
    return instant


class Command(BaseCommand):
    help = "Bill every subscription-period due at an instant (safe to repeat)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--at", help="ISO-8601 instant with a timezone (default: now)")
        parser.add_argument("--customer", help="only this customer's external id")
        parser.add_argument("--subscription", help="only this subscription's external id")
        parser.add_argument("--dry-run", action="store_true", help="list what is due, write nothing")
        parser.add_argument("--async", action="store_true", dest="run_async", help="one Celery task per period")

    def handle(self, *args: Any, **options: Any) -> None:
        at = parse_instant(options["at"])
        filters = {"customer_external_id": options["customer"], "subscription_external_id": options["subscription"]}
        if options["run_async"]:
            # What the inline run does first: the plan changes due at the instant.
            subscriptions_activate_due(now=at)
        if options["dry_run"] or options["run_async"]:
            due, billed = selectors.split_billed(selectors.due_subscriptions(at=at, include_billed=True, **filters))
            if options["dry_run"]:
                for item in due:
                    window = item.window
                    self.stdout.write(
                        f"would bill {item.subscription.external_id} ({item.subscription.customer.external_id}): "
                        f"{window.reason} {window.from_datetime.isoformat()} .. {window.to_datetime.isoformat()}"
                    )
                self.stdout.write(f"dry run at {at.isoformat()}: {len(due)} due, {len(billed)} already billed")
                return
            from invoicing.tasks import bill_subscription_period

            for item in due:
                bill_subscription_period.delay(
                    str(item.subscription.pk), item.window.reason, item.window.timestamp.isoformat()
                )
            self.stdout.write(f"queued {len(due)} billing tasks; {len(billed)} already billed")
            return

        def progress(done: int, total: int) -> None:
            if sys.stdout.isatty() or done == total or done % 500 == 0:
                width = 30
                filled = width * done // max(total, 1)
                self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
                self.stdout.flush()

        summary = runs.bill_due(at=at, actor="command:run_invoices", progress=progress, **filters)
        self.stdout.write("")
        for error in summary.errors:
            self.stderr.write(f"failed: {error}")
        self.stdout.write(
            f"run at {at.isoformat()}: {summary.created} invoices created, "
            f"{summary.skipped} skipped (already billed), {summary.failed} failed"
        )
        # Late usage: the finalized periods marked since the last run, re-rated (invoicing.corrections).
        from invoicing.corrections.rerate import late_usage_rerate

        rerated = late_usage_rerate(at=at, actor="command:run_invoices")
        self.stdout.write(
            "late usage: " + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in rerated.as_dict().items())
        )
        if summary.failed:
            raise CommandError(f"{summary.failed} subscription-period(s) failed; rerun to retry them")
