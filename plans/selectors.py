"""Reads other code needs from the plans app: lookups by Lago identifiers and the taxes that
apply to a fee (invoicing)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from customers.models import Customer

from .fixed_charges import FixedCharge
from .models import AddOn, Charge, ChargeFilter, Coupon, CustomerTax, Plan, Subscription, SubscriptionStatus, Tax
from .subscriptions import live_subscription  # noqa: F401  (re-exported)
from .usage_thresholds import UsageThreshold


def live_charges() -> QuerySet[Charge]:
    """Live charges with their metric, plan, taxes and live filters (one query each)."""
    return (
        Charge.objects.filter(deleted_at__isnull=True)
        .select_related("billable_metric", "plan")
        .prefetch_related("taxes", Prefetch("filters", queryset=ChargeFilter.objects.filter(deleted_at__isnull=True)))
        .order_by("created_at", "id")
    )


def plans_with_charges() -> QuerySet[Plan]:
    """Live plans with their live charges, filters and taxes prefetched (one query each), and
    Lago's counters of active subscriptions and distinct customers."""
    live_charges = (
        Charge.objects.filter(deleted_at__isnull=True)
        .select_related("billable_metric")
        .prefetch_related("taxes", Prefetch("filters", queryset=ChargeFilter.objects.filter(deleted_at__isnull=True)))
        .order_by("created_at", "id")
    )
    active = Q(subscriptions__status=SubscriptionStatus.ACTIVE)
    # Lago's counters (app/models/plan.rb) add the subscriptions on the plan's overrides.
    on_overrides = Q(children__subscriptions__status=SubscriptionStatus.ACTIVE)
    return (
        Plan.live.select_related("minimum_commitment")
        .prefetch_related(
            "taxes",
            Prefetch("charges", queryset=live_charges),
            Prefetch("usage_thresholds", queryset=UsageThreshold.objects.filter(deleted_at__isnull=True)),
            Prefetch(
                "fixed_charges",
                queryset=FixedCharge.objects.filter(deleted_at__isnull=True).select_related("add_on"),
            ),
        )
        .annotate(
            active_subscriptions_count=Count("subscriptions", filter=active, distinct=True)
            + Count("children__subscriptions", filter=on_overrides, distinct=True),
            customers_count=Count("subscriptions__customer", filter=active, distinct=True)
            + Count("children__subscriptions__customer", filter=on_overrides, distinct=True),
        )
        .order_by("-created_at", "id")
    )


def coupons_with_limits() -> QuerySet[Coupon]:
    return Coupon.live.prefetch_related("plans", "billable_metrics").order_by("-created_at", "id")


def add_ons_with_taxes() -> QuerySet[AddOn]:
    return AddOn.live.prefetch_related("taxes").order_by("-created_at", "id")


def subscriptions_list(
    *, external_customer_id: str | None = None, plan_code: str | None = None, statuses: Sequence[str] = ()
) -> QuerySet[Subscription]:
    """Lago's GET /subscriptions: active ones unless `statuses` say otherwise."""
    rows = Subscription.objects.select_related("customer", "plan", "previous_subscription__plan").filter(
        status__in=list(statuses) or [SubscriptionStatus.ACTIVE]
    )
    if external_customer_id:
        rows = rows.filter(customer__external_id=external_customer_id, customer__deleted_at__isnull=True)
    if plan_code:
        rows = rows.filter(plan__code=plan_code)
    return rows.order_by("-created_at", "id")


def organization_taxes() -> list[Tax]:
    return list(Tax.objects.filter(applied_to_organization=True))


def fee_taxes(
    *, customer: Customer, plan: Plan | None = None, charge: Charge | None = None, add_on: AddOn | None = None
) -> list[Tax]:
    """The taxes of one fee, most specific first as Lago applies them: the charge's taxes, else
    the plan's (subscription and charge fees), or the add-on's; else the customer's; else the
    organization's default taxes. An empty list means untaxed. The one home of the rule, in two
    halves a bulk reader can call apart: `owner_taxes`, then `default_taxes`."""
    return owner_taxes(plan=plan, charge=charge, add_on=add_on) or default_taxes(
        customer_taxes=customer_taxes(customer), organization_taxes=organization_taxes()
    )


def owner_taxes(*, plan: Plan | None = None, charge: Charge | None = None, add_on: AddOn | None = None) -> list[Tax]:
    """The first half of `fee_taxes`: the add-on's taxes, or the charge's else the plan's."""
    owners = [add_on] if add_on is not None else [charge, plan]
    for owner in owners:
        if owner is not None:
            taxes = list(owner.taxes.all())
            if taxes:
                return taxes
    return []


def default_taxes(*, customer_taxes: list[Tax], organization_taxes: list[Tax]) -> list[Tax]:
    """The second half of `fee_taxes`: the customer's taxes, else the organization's."""
    return customer_taxes or organization_taxes


def customer_taxes(customer: Customer) -> list[Tax]:
    return [row.tax for row in CustomerTax.objects.filter(customer=customer).select_related("tax")]


def customer_default_taxes(customer: Customer) -> list[Tax]:
    """`default_taxes` of one customer in one query: the customer's taxes, else the
    organization's (both read together; the hot paths, current usage, pay one round trip)."""
    applied = CustomerTax.objects.filter(customer=customer)
    rows = list(
        Tax.objects.filter(Q(applied_to_organization=True) | Q(pk__in=applied.values("tax_id"))).annotate(
            for_customer=Exists(applied.filter(tax_id=OuterRef("pk")))
        )
    )
    return default_taxes(
        customer_taxes=[tax for tax in rows if tax.for_customer],
        organization_taxes=[tax for tax in rows if tax.applied_to_organization],
    )
