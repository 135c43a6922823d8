"""Demo data for plans: a VAT tax, the "startup" plan, an add-on, a welcome coupon and the
subscriptions sub_acme, sub_tanaka and sub_globex. Safe to repeat (looked up by code, created
only when missing, through the services); creates the metrics and customers it needs when alone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from billing_project.demo import DemoSummary
from customers.models import Customer, Organization
from metrics.models import BillableMetric

from . import services
from .errors import PlansError
from .models import AddOn, AppliedCoupon, Coupon, Plan, Subscription, SubscriptionStatus, Tax

API_CALLS_TIERS = [
    {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 1001, "to_value": 10000, "per_unit_amount": "0.002", "flat_amount": "0"},
    {"from_value": 10001, "to_value": None, "per_unit_amount": "0.001", "flat_amount": "0"},
]

PLANS: list[dict[str, Any]] = [
    {"code": "startup", "name": "Startup", "amount_cents": 4900, "amount_currency": "USD", "interval": "monthly"},
    {
        "code": "startup_jpy",
        "name": "Startup (JPY)",
        "amount_cents": 5000,
        "amount_currency": "JPY",
        "interval": "monthly",
    },
    {
        "code": "startup_eur_weekly",
        "name": "Startup weekly (EUR)",
        "amount_cents": 1200,
        "amount_currency": "EUR",
        "interval": "weekly",
    },
]

CUSTOMERS = {
    "acme": {"name": "Acme Corp", "timezone": "", "country": "US"},
    "tanaka": {"name": "Tanaka K.K.", "timezone": "Asia/Tokyo", "country": "JP"},
    "globex": {"name": "Globex SARL", "timezone": "Europe/Paris", "country": "FR"},
}

# (external id, customer, plan, billing time)
SUBSCRIPTIONS = [
    ("sub_acme", "acme", "startup", "calendar"),
    ("sub_tanaka", "tanaka", "startup_jpy", "calendar"),
    ("sub_globex", "globex", "startup_eur_weekly", "anniversary"),
]

ADD_ON: dict[str, Any] = {
    "code": "onboarding",
    "name": "Onboarding workshop",
    "amount_cents": 50000,
    "amount_currency": "USD",
}
COUPON: dict[str, Any] = {
    "code": "welcome_eur",
    "name": "Welcome EUR 5",
    "coupon_type": "fixed_amount",
    "amount_cents": 500,
    "amount_currency": "EUR",
    "frequency": "once",
    "expiration": "no_expiration",
}
COUPON_CUSTOMER = "globex"


def _metric(code: str) -> BillableMetric:
    metric = BillableMetric.live.filter(code=code).first()
    if metric is not None:
        return metric
    from metrics import demo as metrics_demo
    from metrics import services as metrics_services

    spec = next(spec for spec in metrics_demo.METRICS if spec["code"] == code)
    return metrics_services.billable_metric_create(**spec)


def _customer(external_id: str) -> Customer:
    customer = Customer.live.filter(external_id=external_id).first()
    if customer is None:
        # The customers demo step makes them; alone, this step needs them too.
        customer = Customer.objects.create(external_id=external_id, **CUSTOMERS[external_id])
    return customer


def first_of_month_two_months_ago(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz))
    year, month = local.year, local.month - 2
    if month < 1:
        year, month = year - 1, month + 12
    return datetime.combine(local.date().replace(year=year, month=month, day=1), time(0), tzinfo=ZoneInfo(tz))


def eight_days_ago(now: datetime, tz: str) -> datetime:
    """Midnight local, eight days ago: a weekly anniversary period ended yesterday."""
    local = now.astimezone(ZoneInfo(tz))
    return datetime.combine(local.date() - timedelta(days=8), time(0), tzinfo=ZoneInfo(tz))


def load(*, stdout: Any, summary: DemoSummary | None = None) -> None:
    done: list[str] = []
    with transaction.atomic():
        if not Tax.objects.filter(code="vat_20").exists():
            services.tax_create(code="vat_20", name="VAT 20%", rate=Decimal(20), applied_to_organization=True)
            done.append("tax vat_20")
        for code in ("api_calls", "storage_gb", "seats"):
            _metric(code)
        for spec in PLANS:
            if Plan.live.filter(code=spec["code"]).exists():
                continue
            services.plan_create(
                **spec,
                pay_in_advance=False,
                description="Monthly platform fee with usage-based API calls and storage",
                charges=[
                    {
                        "billable_metric_id": str(_metric("api_calls").pk),
                        "charge_model": "graduated",
                        "properties": {"graduated_ranges": API_CALLS_TIERS},
                        "invoice_display_name": "API calls",
                    },
                    {
                        "billable_metric_id": str(_metric("storage_gb").pk),
                        "charge_model": "standard",
                        "properties": {"amount": "0.25"},
                        "invoice_display_name": "Storage (GB)",
                    },
                ],
            )
            done.append(f"plan {spec['code']}")
        if not AddOn.live.filter(code=ADD_ON["code"]).exists():
            services.add_on_create(**ADD_ON, description="A half-day workshop, billed once")
            done.append(f"add-on {ADD_ON['code']}")
        coupon = Coupon.live.filter(code=COUPON["code"]).first()
        if coupon is None:
            coupon = services.coupon_create(**COUPON)
            done.append(f"coupon {COUPON['code']}")
        if not AppliedCoupon.objects.filter(coupon=coupon).exists():
            services.applied_coupon_create(customer=_customer(COUPON_CUSTOMER), coupon=coupon)
            done.append(f"coupon {COUPON['code']} granted to {COUPON_CUSTOMER}")
    now = timezone.now()
    organization = Organization.current()
    for external_id, customer_id, plan_code, billing_time in SUBSCRIPTIONS:
        live = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)
        if Subscription.objects.filter(external_id=external_id, status__in=live).exists():
            continue
        customer = _customer(customer_id)
        local_tz = customer.applicable_timezone(organization)
        weekly = Plan.live.get(code=plan_code).interval == "weekly"
        start = eight_days_ago(now, local_tz) if weekly else first_of_month_two_months_ago(now, local_tz)
        try:
            services.subscription_create(
                customer=customer,
                plan=Plan.live.get(code=plan_code),
                external_id=external_id,
                name=f"{customer.name} - {plan_code}",
                billing_time=billing_time,
                subscription_at=start,
                # Recorded at its start, as if Tollgate had known it since: the demo bills its
                # two ended months (a backdated subscription's past periods are never billed).
                now=start,
            )
        except PlansError as error:
            stdout.write(f"plans: subscription {external_id} not created ({error.code}: {error.details})")
            continue
        done.append(f"subscription {external_id} from {start:%Y-%m-%d}")
    stdout.write(f"plans: {', '.join(done) if done else 'everything already present'}")
