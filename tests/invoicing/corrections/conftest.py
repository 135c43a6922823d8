"""Late usage: a customer on a graduated plan billed for January 2024, then late events."""

from __future__ import annotations

from typing import Any

import pytest

from customers.models import Organization
from invoicing.corrections.rerate import late_usage_rerate
from tests.factories.invoicing import utc
from tests.factories.metrics import make_events
from tests.factories.plans import make_plan, make_tax, metric

# Tiers 0-100 at 1.00 and 101+ at 0.50 (issue 15's worked example).
GRADUATED = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "1", "flat_amount": "0"},
        {"from_value": 101, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
    ]
}


def set_policy(policy: str) -> None:
    Organization.objects.filter(pk=Organization.current().pk).update(late_usage_policy=policy)


def units(subscription: Any, values: list[int], *, day: int = 10, code: str = "units", **properties: Any) -> None:
    """Events of `code` carrying n=value, in January 2024 (or the given day of it)."""
    make_events(
        {
            "external_subscription_id": subscription.external_id,
            "code": code,
            "timestamp": utc(2024, 1, day, 12),
            "properties": {"n": value, **properties},
        }
        for value in values
    )


def rerate(at: Any = None) -> Any:
    return late_usage_rerate(at=at or utc(2024, 2, 1, 1), actor="test")


@pytest.fixture
def graduated_plan() -> Any:
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    units_metric = metric("units", aggregation_type="sum_agg", field_name="n")
    return make_plan(
        amount_cents=0,
        charges=[{"billable_metric_id": str(units_metric.pk), "charge_model": "graduated", "properties": GRADUATED}],
    )


def pytest_collection_modifyitems(items):
    """Late usage rests on PostgreSQL (the events trigger that marks late periods, the lineage's
    INSERT ... SELECT): on SQLite these tests skip with the suite's reason, as other
    PostgreSQL-only tests do."""
    for item in items:
        if "invoicing/corrections/" in str(item.fspath):
            item.add_marker(pytest.mark.postgres)
