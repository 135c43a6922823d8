"""State changes of coupons and of the coupons applied to customers (which invoicing consumes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from djmoney.money import Money

from billing_project.money import from_cents, is_currency
from customers.locks import lock_customer
from customers.models import Customer
from metrics.models import BillableMetric

from ._service_helpers import MAX_CENTS, _code_taken_is_refused, _now
from .errors import NotFoundError, PlansError
from .models import AppliedCoupon, Coupon, CouponFrequency, CouponType, Plan


def _coupon_limits(plan_codes: Sequence[str] | None, metric_codes: Sequence[str] | None) -> tuple[list, list]:
    plans = list(Plan.live.filter(code__in=plan_codes or []))
    if len(plans) != len(set(plan_codes or [])):
        raise NotFoundError("plan")
    metrics = list(BillableMetric.live.filter(code__in=metric_codes or []))
    if len(metrics) != len(set(metric_codes or [])):
        raise NotFoundError("billable_metric")
    return plans, metrics


def _coupon_rules(values: Mapping[str, Any], now: datetime) -> None:
    errors: dict[str, list[str]] = {}
    for key in ("name", "code"):
        if not values.get(key):
            errors[key] = ["value_is_mandatory"]
    coupon_type = values.get("coupon_type")
    if coupon_type not in CouponType.values:
        errors["coupon_type"] = ["value_is_mandatory" if not coupon_type else "value_is_invalid"]
    elif coupon_type == CouponType.FIXED_AMOUNT:
        if values.get("amount_cents") is None:
            errors["amount_cents"] = ["value_is_mandatory"]
        else:
            cents = values["amount_cents"]
            if isinstance(cents, bool) or not isinstance(cents, int) or not 0 < cents < MAX_CENTS:
                errors["amount_cents"] = ["value_is_invalid"]
        currency = values.get("amount_currency")
        if not currency:
            errors["amount_currency"] = ["value_is_mandatory"]
        elif not is_currency(currency):
            errors["amount_currency"] = ["value_is_invalid"]
    else:
        rate = values.get("percentage_rate")
        if rate is None:
            errors["percentage_rate"] = ["value_is_mandatory"]
        elif not Decimal(rate).is_finite() or not 0 < Decimal(rate) <= 100:
            errors["percentage_rate"] = ["value_is_invalid"]
    frequency = values.get("frequency") or CouponFrequency.ONCE
    if frequency not in CouponFrequency.values:
        errors["frequency"] = ["value_is_invalid"]
    elif frequency == CouponFrequency.RECURRING:
        duration = values.get("frequency_duration")
        if duration is None:
            errors["frequency_duration"] = ["value_is_mandatory"]
        elif isinstance(duration, bool) or not isinstance(duration, int) or not 0 < duration < 10_000:
            errors["frequency_duration"] = ["value_is_invalid"]
    expiration = values.get("expiration") or "no_expiration"
    if expiration not in ("no_expiration", "time_limit"):
        errors["expiration"] = ["value_is_invalid"]
    elif expiration == "time_limit":
        expiration_at = values.get("expiration_at")
        if expiration_at is None:
            errors["expiration_at"] = ["value_is_mandatory"]
        elif expiration_at <= now:
            errors["expiration_at"] = ["invalid_date"]
    if errors:
        raise PlansError(errors)


def _coupon_attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    fixed = values["coupon_type"] == CouponType.FIXED_AMOUNT
    frequency = values.get("frequency") or CouponFrequency.ONCE
    expiration = values.get("expiration") or "no_expiration"
    amount = None
    if fixed:
        currency = values["amount_currency"]
        amount = Money(from_cents(values["amount_cents"], currency), currency)
    return {
        "name": values["name"],
        "code": values["code"],
        "description": values.get("description") or "",
        "coupon_type": values["coupon_type"],
        "amount": amount,
        "percentage_rate": None if fixed else Decimal(values["percentage_rate"]),
        "frequency": frequency,
        "frequency_duration": values.get("frequency_duration") if frequency == CouponFrequency.RECURRING else None,
        "expiration": expiration,
        "expiration_at": values.get("expiration_at") if expiration == "time_limit" else None,
        "reusable": True if values.get("reusable") is None else bool(values["reusable"]),
    }


def _coupon_values(coupon: Coupon) -> dict[str, Any]:
    from billing_project.money import to_cents

    return {
        "name": coupon.name,
        "code": coupon.code,
        "description": coupon.description,
        "coupon_type": coupon.coupon_type,
        "amount_cents": to_cents(coupon.amount.amount, str(coupon.amount.currency)) if coupon.amount else None,
        "amount_currency": str(coupon.amount.currency) if coupon.amount else None,
        "percentage_rate": coupon.percentage_rate,
        "frequency": coupon.frequency,
        "frequency_duration": coupon.frequency_duration,
        "expiration": coupon.expiration,
        "expiration_at": coupon.expiration_at,
        "reusable": coupon.reusable,
    }


@transaction.atomic
def coupon_create(
    *,
    plan_codes: Sequence[str] | None = None,
    billable_metric_codes: Sequence[str] | None = None,
    now: datetime | None = None,
    **values: Any,
) -> Coupon:
    """A coupon: `name`, `code`, `coupon_type` with `amount_cents`+`amount_currency` or
    `percentage_rate`, `frequency` (+`frequency_duration`), `expiration` (+`expiration_at`),
    `reusable`, `description`; optionally limited to plans or billable metrics."""
    now = _now(now)
    _coupon_rules(values, now)
    plans, metrics = _coupon_limits(plan_codes, billable_metric_codes)
    if Coupon.live.filter(code=values["code"]).exists():
        raise PlansError.field("code", "value_already_exist")
    with _code_taken_is_refused():
        coupon = Coupon.objects.create(
            **_coupon_attributes(values),
            limited_plans=bool(plans),
            limited_billable_metrics=bool(metrics),
        )
    coupon.plans.set(plans)
    coupon.billable_metrics.set(metrics)
    return coupon


# Once granted, a coupon's economics stay as granted: only its names and expiry may change.
_COUPON_TERMS = ("coupon_type", "amount_cents", "amount_currency", "percentage_rate", "frequency", "frequency_duration")


@transaction.atomic
def coupon_update(
    *,
    coupon: Coupon,
    plan_codes: Sequence[str] | None = None,
    billable_metric_codes: Sequence[str] | None = None,
    now: datetime | None = None,
    **changes: Any,
) -> Coupon:
    now = _now(now)
    coupon = Coupon.objects.select_for_update().get(pk=coupon.pk)
    current = _coupon_values(coupon)
    wanted = {**current, **{key: value for key, value in changes.items() if value is not None}}
    if "expiration_at" in changes and changes["expiration_at"] is None:
        wanted["expiration_at"] = None
    if coupon.applied_coupons.exists():
        frozen = [key for key in _COUPON_TERMS if key in changes and wanted[key] != current[key]]
        if frozen:
            raise PlansError({key: ["coupon_already_applied"] for key in frozen})
    _coupon_rules(wanted, now)
    if wanted["code"] != coupon.code and Coupon.live.filter(code=wanted["code"]).exclude(pk=coupon.pk).exists():
        raise PlansError.field("code", "value_already_exist")
    for key, value in _coupon_attributes(wanted).items():
        setattr(coupon, key, value)
    if plan_codes is not None or billable_metric_codes is not None:
        plans, metrics = _coupon_limits(plan_codes, billable_metric_codes)
        if plan_codes is not None:
            coupon.plans.set(plans)
            coupon.limited_plans = bool(plans)
        if billable_metric_codes is not None:
            coupon.billable_metrics.set(metrics)
            coupon.limited_billable_metrics = bool(metrics)
    with _code_taken_is_refused():
        coupon.save()
    coupon.refresh_from_db()
    return coupon


@transaction.atomic
def coupon_delete(*, coupon: Coupon, now: datetime | None = None) -> Coupon:
    """Retire a coupon: it can no longer be applied, and the grants still running end now."""
    now = _now(now)
    coupon = Coupon.objects.select_for_update().get(pk=coupon.pk)
    coupon.applied_coupons.filter(status="active").update(status="terminated", terminated_at=now)
    coupon.terminated_at = coupon.terminated_at or now
    coupon.deleted_at = now
    coupon.save(update_fields=["terminated_at", "deleted_at", "updated_at"])
    return coupon


def coupon_is_usable(coupon: Coupon, now: datetime) -> bool:
    if coupon.deleted_at is not None or coupon.terminated_at is not None:
        return False
    return not (coupon.expiration == "time_limit" and coupon.expiration_at is not None and coupon.expiration_at <= now)


@transaction.atomic
def applied_coupon_create(
    *,
    customer: Customer,
    coupon: Coupon,
    amount_cents: int | None = None,
    amount_currency: str | None = None,
    percentage_rate: Decimal | None = None,
    frequency: str | None = None,
    frequency_duration: int | None = None,
    now: datetime | None = None,
) -> AppliedCoupon:
    """Grant `coupon` to `customer`, with the amount, rate or frequency optionally overridden
    (Lago's POST /applied_coupons). Invoicing consumes it."""
    now = _now(now)
    customer = lock_customer(customer)
    if not coupon_is_usable(coupon, now):
        raise NotFoundError("coupon")
    if not coupon.reusable and AppliedCoupon.objects.filter(customer=customer, coupon=coupon).exists():
        raise PlansError(None, "coupon_is_not_reusable")
    values = _coupon_values(coupon)
    overrides = {
        "amount_cents": amount_cents,
        "amount_currency": amount_currency,
        "percentage_rate": percentage_rate,
        "frequency": frequency,
        "frequency_duration": frequency_duration,
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    if values["frequency"] != CouponFrequency.RECURRING:
        values["frequency_duration"] = None
    _coupon_rules({**values, "expiration": "no_expiration"}, now)
    attributes = _coupon_attributes({**values, "expiration": "no_expiration"})
    currency = str(attributes["amount"].currency) if attributes["amount"] is not None else None
    if currency and customer.currency and currency != customer.currency:
        raise PlansError(None, "currencies_does_not_match")
    # A fixed amount granted once is consumed across invoices until it is used up.
    once_amount = attributes["coupon_type"] == CouponType.FIXED_AMOUNT and attributes["frequency"] == "once"
    return AppliedCoupon.objects.create(
        customer=customer,
        coupon=coupon,
        amount=attributes["amount"],
        amount_remaining=attributes["amount"].amount if once_amount else None,
        percentage_rate=attributes["percentage_rate"],
        frequency=attributes["frequency"],
        frequency_duration=attributes["frequency_duration"],
        frequency_duration_remaining=attributes["frequency_duration"],
    )


@transaction.atomic
def applied_coupon_terminate(*, applied_coupon: AppliedCoupon, now: datetime | None = None) -> AppliedCoupon:
    applied_coupon = AppliedCoupon.objects.select_for_update().get(pk=applied_coupon.pk)
    if applied_coupon.status != "terminated":
        applied_coupon.status = "terminated"
        applied_coupon.terminated_at = _now(now)
        applied_coupon.save(update_fields=["status", "terminated_at"])
    return applied_coupon
