"""Lago's JSON shapes for the catalog and subscriptions: DRF serializers parse requests (their
type errors leave in Lago's 422 shape), plain functions render answers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone
from rest_framework import serializers

from billing_project.api.identifiers import path_segment
from billing_project.money import to_cents
from customers.models import Organization

from .. import periods
from ..models import AddOn, AppliedCoupon, Charge, ChargeFilter, Coupon, Plan, Subscription, SubscriptionStatus, Tax


def iso(moment: datetime | None) -> str | None:
    """Lago's timestamps: 2022-04-29T08:59:51Z."""
    if moment is None:
        return None
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _cents(money: Any) -> int | None:
    if money is None:
        return None
    return to_cents(money.amount, str(money.currency))


def _number(value: Decimal | None) -> float | None:
    # Rates and trial days (not money) travel as JSON numbers, as Lago sends them.
    return None if value is None else float(value)


# --------------------------------------------------------------------------------------------
# Requests


class _Input(serializers.Serializer):
    """Optional nullable fields everywhere: Lago's clients drop None values, and a missing
    required value is the service's `value_is_mandatory`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.allow_null = True


def _text(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(allow_blank=True, trim_whitespace=True, max_length=255, **kwargs)


def _identifier() -> serializers.CharField:
    """A code or external id: it names the resource in a path, so it holds no "/"."""
    return _text(validators=[path_segment])


class LagoDateTimeField(serializers.DateTimeField):
    """ISO 8601; a value that is not one is Lago's `invalid_date`. Naive values mean UTC."""

    def to_internal_value(self, value: Any) -> datetime:
        try:
            parsed = super().to_internal_value(value)
        except serializers.ValidationError:
            raise serializers.ValidationError("invalid_date", code="invalid_date") from None
        return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


class TaxInput(_Input):
    name = _text()
    code = _identifier()
    rate = serializers.DecimalField(max_digits=9, decimal_places=4, coerce_to_string=False)
    description = serializers.CharField(allow_blank=True, max_length=10_000)
    applied_to_organization = serializers.BooleanField()


class ChargeFilterInput(_Input):
    invoice_display_name = _text()
    properties = serializers.DictField()
    values = serializers.DictField(child=serializers.ListField(child=serializers.CharField(max_length=255)))
    cascade_updates = serializers.BooleanField()


class ChargeInput(_Input):
    id = serializers.CharField(max_length=64)
    code = _identifier()
    billable_metric_id = serializers.CharField(max_length=64)
    billable_metric_code = serializers.CharField(max_length=255)
    charge_model = serializers.CharField(max_length=32)
    pay_in_advance = serializers.BooleanField()
    prorated = serializers.BooleanField()
    invoiceable = serializers.BooleanField()
    invoice_display_name = _text()
    min_amount_cents = serializers.IntegerField()
    properties = serializers.DictField()
    filters = serializers.ListField(child=ChargeFilterInput(), max_length=500)
    tax_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=100)
    regroup_paid_fees = serializers.CharField(max_length=32)
    # Accepted, not honoured yet (answered with Lago's neutral values: false, null).
    accepts_target_wallet = serializers.BooleanField()
    applied_pricing_unit = serializers.DictField()
    cascade_updates = serializers.BooleanField()


class ChargeOverrideInput(_Input):
    """A charge in `plan_overrides`, or the body of PUT /subscriptions/{id}/charges/{code}."""

    id = serializers.CharField(max_length=255)
    invoice_display_name = _text()
    min_amount_cents = serializers.IntegerField()
    properties = serializers.DictField()
    filters = serializers.ListField(child=ChargeFilterInput(), max_length=500)
    tax_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=100)
    applied_pricing_unit = serializers.DictField()


class MinimumCommitmentInput(_Input):
    id = serializers.CharField(max_length=64)
    amount_cents = serializers.IntegerField()
    invoice_display_name = _text()
    tax_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=100)


class PlanOverridesInput(_Input):
    name = _text()
    invoice_display_name = _text()
    description = serializers.CharField(allow_blank=True, max_length=10_000)
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField(max_length=3)
    trial_period = serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=False)
    tax_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=100)
    charges = serializers.ListField(child=ChargeOverrideInput(), max_length=500)
    minimum_commitment = MinimumCommitmentInput()
    # Parts of Lago's plan_overrides Tollgate has no model for yet: accepted and ignored.
    fixed_charges = serializers.ListField(child=serializers.DictField(), max_length=500)
    usage_thresholds = serializers.ListField(child=serializers.DictField(), max_length=500)


class PlanInput(_Input):
    name = _text()
    invoice_display_name = _text()
    code = _identifier()
    interval = serializers.CharField(max_length=16)
    description = serializers.CharField(allow_blank=True, max_length=10_000)
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField(max_length=3)
    trial_period = serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=False)
    pay_in_advance = serializers.BooleanField()
    bill_charges_monthly = serializers.BooleanField()
    tax_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=100)
    charges = serializers.ListField(child=ChargeInput(), max_length=500)
    cascade_updates = serializers.BooleanField()
    metadata = serializers.DictField()


class AddOnInput(_Input):
    name = _text()
    invoice_display_name = _text()
    code = _identifier()
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField(max_length=3)
    description = serializers.CharField(allow_blank=True, max_length=10_000)
    tax_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=100)


class AppliesToInput(_Input):
    plan_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=1000)
    billable_metric_codes = serializers.ListField(child=serializers.CharField(max_length=255), max_length=1000)


class CouponInput(_Input):
    name = _text()
    code = _identifier()
    description = serializers.CharField(allow_blank=True, max_length=10_000)
    coupon_type = serializers.CharField(max_length=16)
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField(max_length=3)
    percentage_rate = serializers.DecimalField(max_digits=9, decimal_places=4, coerce_to_string=False)
    frequency = serializers.CharField(max_length=16)
    frequency_duration = serializers.IntegerField()
    expiration = serializers.CharField(max_length=16)
    expiration_at = LagoDateTimeField()
    reusable = serializers.BooleanField()
    applies_to = AppliesToInput()


class AppliedCouponInput(_Input):
    external_customer_id = serializers.CharField(max_length=255)
    coupon_code = serializers.CharField(max_length=255)
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField(max_length=3)
    percentage_rate = serializers.DecimalField(max_digits=9, decimal_places=4, coerce_to_string=False)
    frequency = serializers.CharField(max_length=16)
    frequency_duration = serializers.IntegerField()


class SubscriptionInput(_Input):
    external_customer_id = serializers.CharField(max_length=255)
    plan_code = serializers.CharField(max_length=255)
    external_id = serializers.CharField(max_length=255, validators=[path_segment])
    name = _text()
    subscription_at = LagoDateTimeField()
    ending_at = LagoDateTimeField()
    billing_time = serializers.CharField(max_length=16)
    plan_overrides = PlanOverridesInput()


def parse(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validated data with only the keys the caller sent (so a PUT changes only those)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return _plain(serializer.validated_data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Answers


def serialize_tax(tax: Tax) -> dict[str, Any]:
    return {
        "lago_id": str(tax.pk),
        "name": tax.name,
        "code": tax.code,
        "rate": _number(tax.rate),
        "description": tax.description or None,
        "applied_to_organization": tax.applied_to_organization,
        "created_at": iso(tax.created_at),
    }


def _taxes(owner: Any) -> list[dict[str, Any]]:
    return [serialize_tax(tax) for tax in owner.taxes.all()]


def serialize_charge_filter(charge_filter: ChargeFilter, charge_code: str | None = None) -> dict[str, Any]:
    return {
        "lago_id": str(charge_filter.pk),
        "charge_code": charge_code if charge_code is not None else charge_filter.charge.code,
        "invoice_display_name": charge_filter.invoice_display_name or None,
        "properties": charge_filter.properties,
        "values": charge_filter.values,
        "created_at": iso(charge_filter.created_at),
    }


def serialize_charge(charge: Charge, currency: str) -> dict[str, Any]:
    return {
        "lago_id": str(charge.pk),
        "lago_billable_metric_id": str(charge.billable_metric_id),
        "code": charge.code,
        "billable_metric_code": charge.billable_metric.code,
        "invoice_display_name": charge.invoice_display_name or None,
        "created_at": iso(charge.created_at),
        "charge_model": charge.charge_model,
        "invoiceable": charge.invoiceable,
        "regroup_paid_fees": None,
        "pay_in_advance": charge.pay_in_advance,
        "prorated": charge.prorated,
        "min_amount_cents": to_cents(charge.min_amount, currency),
        "properties": charge.properties,
        "filters": [serialize_charge_filter(f, charge.code) for f in charge.filters.all() if f.deleted_at is None],
        "taxes": _taxes(charge),
        # Not honoured yet: Lago's neutral values (README, "Keys answered with neutral values").
        "accepts_target_wallet": False,
        "applied_pricing_unit": None,
        "lago_parent_id": str(charge.parent_id) if charge.parent_id else None,
    }


def serialize_plan(plan: Plan) -> dict[str, Any]:
    currency = str(plan.amount.currency)
    charges = [c for c in plan.charges.all() if c.deleted_at is None]
    return {
        "lago_id": str(plan.pk),
        "name": plan.name,
        "invoice_display_name": plan.invoice_display_name or None,
        "created_at": iso(plan.created_at),
        "code": plan.code,
        "interval": plan.interval,
        "description": plan.description or None,
        "amount_cents": _cents(plan.amount),
        "amount_currency": currency,
        "trial_period": _number(plan.trial_period),
        "pay_in_advance": plan.pay_in_advance,
        "bill_charges_monthly": plan.bill_charges_monthly,
        "active_subscriptions_count": getattr(plan, "active_subscriptions_count", None),
        "customers_count": getattr(plan, "customers_count", None),
        "parent_id": str(plan.parent_id) if plan.parent_id else None,
        "pending_deletion": False,
        "charges": [serialize_charge(charge, currency) for charge in charges],
        "taxes": _taxes(plan),
        "metadata": plan.metadata,
        "minimum_commitment": plan.minimum_commitment_override,
        "usage_thresholds": [],
    }


def serialize_add_on(add_on: AddOn) -> dict[str, Any]:
    return {
        "lago_id": str(add_on.pk),
        "name": add_on.name,
        "invoice_display_name": add_on.invoice_display_name or None,
        "code": add_on.code,
        "amount_cents": _cents(add_on.amount),
        "amount_currency": str(add_on.amount.currency),
        "description": add_on.description or None,
        "created_at": iso(add_on.created_at),
        "taxes": _taxes(add_on),
    }


def serialize_coupon(coupon: Coupon) -> dict[str, Any]:
    return {
        "lago_id": str(coupon.pk),
        "name": coupon.name,
        "code": coupon.code,
        "description": coupon.description or None,
        "coupon_type": coupon.coupon_type,
        "amount_cents": _cents(coupon.amount),
        "amount_currency": str(coupon.amount.currency) if coupon.amount is not None else None,
        "percentage_rate": _number(coupon.percentage_rate),
        "frequency": coupon.frequency,
        "frequency_duration": coupon.frequency_duration,
        "reusable": coupon.reusable,
        "expiration": coupon.expiration,
        "expiration_at": iso(coupon.expiration_at),
        "limited_plans": coupon.limited_plans,
        "plan_codes": [plan.code for plan in coupon.plans.all()],
        "limited_billable_metrics": coupon.limited_billable_metrics,
        "billable_metric_codes": [metric.code for metric in coupon.billable_metrics.all()],
        "created_at": iso(coupon.created_at),
        "terminated_at": iso(coupon.terminated_at),
    }


def serialize_applied_coupon(applied: AppliedCoupon) -> dict[str, Any]:
    currency = str(applied.amount.currency) if applied.amount is not None else None
    remaining = applied.amount_remaining
    return {
        "lago_id": str(applied.pk),
        "lago_coupon_id": str(applied.coupon_id),
        "coupon_code": applied.coupon.code,
        "coupon_name": applied.coupon.name,
        "lago_customer_id": str(applied.customer_id),
        "external_customer_id": applied.customer.external_id,
        "status": applied.status,
        "amount_cents": _cents(applied.amount),
        "amount_cents_remaining": to_cents(remaining, currency) if remaining is not None and currency else None,
        "amount_currency": currency,
        "percentage_rate": _number(applied.percentage_rate),
        "frequency": applied.frequency,
        "frequency_duration": applied.frequency_duration,
        "frequency_duration_remaining": applied.frequency_duration_remaining,
        "expiration_at": iso(applied.coupon.expiration_at),
        "created_at": iso(applied.created_at),
        "terminated_at": iso(applied.terminated_at),
        "credits": [],
    }


def _local_date(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).date().isoformat()


class SubscriptionContext:
    """What rendering subscriptions needs once per request: now and the organization's zone."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or timezone.now()
        self.organization = Organization.current()

    def timezone_of(self, subscription: Subscription) -> str:
        return subscription.customer.applicable_timezone(self.organization)


def serialize_subscription(
    subscription: Subscription, context: SubscriptionContext | None = None, *, include_plan: bool = False
) -> dict[str, Any]:
    context = context or SubscriptionContext()
    plan = subscription.plan
    pending_next = getattr(subscription, "pending_next", None)
    if pending_next is None:
        pending_next = list(
            subscription.next_subscriptions.filter(status=SubscriptionStatus.PENDING).select_related("plan")
        )
    follower = pending_next[0] if pending_next else None
    previous = subscription.previous_subscription
    period_start = period_end = None
    if subscription.status == SubscriptionStatus.ACTIVE:
        anchor = subscription.subscription_at
        start = max(anchor, subscription.started_at or anchor)
        period = periods.billing_period(
            interval=plan.interval,
            billing_time=subscription.billing_time,
            anchor=anchor,
            clip_from=start,
            at=context.now,
            tz=context.timezone_of(subscription),
        )
        period_start = period.from_datetime
        # Lago shows the period's last second (23:59:59) rather than the next period's start.
        period_end = period.to_datetime - timedelta(seconds=1)
    trial_end = None
    if subscription.started_at is not None and plan.trial_period:
        trial_end = periods.trial_end(subscription)
    data = {
        "lago_id": str(subscription.pk),
        "external_id": subscription.external_id,
        "lago_customer_id": str(subscription.customer_id),
        "external_customer_id": subscription.customer.external_id,
        "name": subscription.name or None,
        "plan_code": plan.code,
        "plan_amount_cents": _cents(plan.amount),
        "plan_amount_currency": str(plan.amount.currency),
        "status": subscription.status,
        "billing_time": subscription.billing_time,
        "subscription_at": iso(subscription.subscription_at),
        "started_at": iso(subscription.started_at),
        "trial_ended_at": iso(trial_end) if trial_end is not None and trial_end <= context.now else None,
        "ending_at": iso(subscription.ending_at),
        "terminated_at": iso(subscription.terminated_at),
        "canceled_at": iso(subscription.canceled_at),
        "created_at": iso(subscription.created_at),
        "previous_plan_code": previous.plan.code if previous is not None else None,
        "next_plan_code": follower.plan.code if follower is not None else None,
        "downgrade_plan_date": _local_date(follower.downgrade_at, context.timezone_of(subscription))
        if follower is not None and follower.downgrade_at
        else None,
        "current_billing_period_started_at": iso(period_start),
        "current_billing_period_ending_at": iso(period_end),
    }
    if include_plan:
        data["plan"] = serialize_plan(plan)
    return data


def serialize_subscriptions(rows: Iterable[Subscription]) -> list[dict[str, Any]]:
    context = SubscriptionContext()
    return [serialize_subscription(row, context) for row in rows]
