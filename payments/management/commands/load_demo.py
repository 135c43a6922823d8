"""Load the demo: every app contributes its part through `<app>.demo.load(stdout=..., summary=...)`,
in the order data flows, then the closing block (URLs, first-run credentials, a curl line) is
printed last. Lives in the rightmost app so it may import all of them. Safe to repeat."""

from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from billing_project.demo import DemoSummary

DEMO_STEPS = ["customers.demo", "metrics.demo", "plans.demo", "invoicing.demo", "payments.demo"]


class Command(BaseCommand):
    help = "Load demo data (organization, customers, metrics, plans, events, invoices, payments)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Host the demo server listens on.")
        parser.add_argument("--port", default="8000", help="Port the demo server listens on.")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = DemoSummary(base_url=f"http://{options['host']}:{options['port']}")
        for name in DEMO_STEPS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as error:
                if error.name != name:
                    raise
                continue
            module.load(stdout=self.stdout, summary=summary)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(summary.closing_block()))
