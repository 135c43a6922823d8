"""Test data builders for the plans app (plain functions, keyword arguments). They go through
the services, so what they build obeys the same rules as the API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from customers.models import Customer
from metrics.models import BillableMetric
from plans import services
from plans.models import Coupon, Plan, Subscription, Tax
from tests.factories.customers import make_customer
from tests.factories.metrics import make_metric


def make_tax(*, code: str = "vat_20", rate: str = "20", **fields: Any) -> Tax:
    fields.setdefault("name", code.upper())
    return services.tax_create(code=code, rate=Decimal(rate), **fields)


def metric(code: str = "api_calls", **fields: Any) -> BillableMetric:
    """The live metric with `code`, made if missing."""
    return BillableMetric.live.filter(code=code).first() or make_metric(code=code, **fields)


def standard_charge(metric_code: str = "api_calls", amount: str = "0.05", **fields: Any) -> dict[str, Any]:
    return {
        "billable_metric_id": str(metric(metric_code).pk),
        "charge_model": "standard",
        "properties": {"amount": amount},
        **fields,
    }


def make_plan(
    *,
    code: str = "startup",
    interval: str = "monthly",
    amount_cents: int = 4900,
    amount_currency: str = "USD",
    charges: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Plan:
    fields.setdefault("name", code.replace("_", " ").title())
    return services.plan_create(
        code=code,
        interval=interval,
        amount_cents=amount_cents,
        amount_currency=amount_currency,
        charges=charges or [],
        **fields,
    )


def make_subscription(
    *,
    customer: Customer | None = None,
    plan: Plan | None = None,
    external_id: str = "sub_1",
    subscription_at: datetime | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> Subscription:
    customer = customer or Customer.live.filter(external_id="cust_1").first() or make_customer()
    plan = plan or Plan.live.filter(code="startup").first() or make_plan()
    return services.subscription_create(
        customer=customer, plan=plan, external_id=external_id, subscription_at=subscription_at, now=now, **fields
    )


def make_coupon(*, code: str = "welcome", **fields: Any) -> Coupon:
    fields.setdefault("name", code.title())
    fields.setdefault("coupon_type", "fixed_amount")
    if fields["coupon_type"] == "fixed_amount":
        fields.setdefault("amount_cents", 1000)
        fields.setdefault("amount_currency", "USD")
    else:
        fields.setdefault("percentage_rate", Decimal("10"))
    return services.coupon_create(code=code, **fields)
