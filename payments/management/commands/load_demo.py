"""Load the demo: every app contributes its part through `<app>.demo.load(stdout=...)`, in the
order data flows. Lives in the rightmost app so it may import all of them. Safe to repeat."""

from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import BaseCommand

DEMO_STEPS = ["customers.demo", "metrics.demo", "plans.demo", "invoicing.demo", "payments.demo"]


class Command(BaseCommand):
    help = "Load demo data (organization, customers, metrics, plans, events, an invoice run)."

    def handle(self, *args: Any, **options: Any) -> None:
        for name in DEMO_STEPS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as error:
                if error.name != name:
                    raise
                continue
            module.load(stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo loaded. Admin: http://127.0.0.1:8000/admin/"))
