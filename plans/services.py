"""State changes of plans; taxes, charges, add-ons and coupons have their own *_services modules,
re-exported here with subscriptions. Keyword-only, one transaction each, refusals as plans.errors.
With live subscriptions a plan changes only prospectively (_FROZEN_PLAN_FIELDS, _FROZEN_CHARGE_FIELDS)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from djmoney.money import Money

from billing_project.metadata import metadata_clean, metadata_set, metadata_without
from billing_project.money import from_cents, is_currency

from . import cascade
from ._service_helpers import _check_cents, _code_taken_is_refused, _now, _taxes_by_codes
from .add_on_services import add_on_create, add_on_delete, add_on_update
from .charge_services import (
    _charges_sync,
    _metrics_priced_in_advance,
    charges_retire_for_metric,
    pay_in_advance_flags_sync,
)
from .coupon_services import (
    applied_coupon_create,
    applied_coupon_terminate,
    coupon_create,
    coupon_delete,
    coupon_is_usable,
    coupon_update,
)
from .errors import NotFoundError, PlansError
from .models import Charge, Plan, PlanInterval, Subscription, SubscriptionStatus
from .overrides import plan_duplicate, plan_pin_live_subscriptions, subscription_charge_update
from .tax_services import customer_taxes_set, tax_create, tax_delete, tax_update

LIVE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)
MONTHLY_CHARGES_INTERVALS = {PlanInterval.YEARLY, PlanInterval.SEMIANNUAL}


def _has_live_subscriptions(plan: Plan) -> bool:
    return plan.pk is not None and plan.subscriptions.filter(status__in=LIVE_STATUSES).exists()


def _plan_fields(fields: dict[str, Any], *, creating: bool) -> None:
    """Type-level rules of plan attributes (the API checked JSON types already)."""
    errors: dict[str, list[str]] = {}
    for name in ("name", "code"):
        if (creating or name in fields) and not fields.get(name):
            errors[name] = ["value_is_mandatory"]
    if creating or "interval" in fields:
        if not fields.get("interval"):
            errors["interval"] = ["value_is_mandatory"]
        elif fields["interval"] not in PlanInterval.values:
            errors["interval"] = ["value_is_invalid"]
    if creating or "amount_currency" in fields:
        currency = fields.get("amount_currency")
        if not currency:
            errors["amount_currency"] = ["value_is_mandatory"]
        elif not is_currency(currency):
            errors["amount_currency"] = ["value_is_invalid"]
    if "trial_period" in fields and fields["trial_period"] is not None:
        trial = Decimal(fields["trial_period"])
        if not trial.is_finite() or trial < 0 or trial >= 10**8 or trial != trial.quantize(Decimal("0.01")):
            errors["trial_period"] = ["value_is_invalid"]
    if errors:
        raise PlansError(errors)
    _check_cents("amount_cents", fields.get("amount_cents"), required=creating or "amount_cents" in fields)


def _bill_charges_monthly(interval: str, value: bool | None) -> bool | None:
    if value and interval not in MONTHLY_CHARGES_INTERVALS:
        raise PlansError.field("bill_charges_monthly", "value_is_invalid")
    # Stored only where it means something (Lago answers null for other intervals).
    return bool(value) if interval in MONTHLY_CHARGES_INTERVALS else None


@transaction.atomic
def plan_create(
    *,
    name: str,
    code: str,
    interval: str,
    amount_cents: int | None,
    amount_currency: str,
    description: str = "",
    invoice_display_name: str = "",
    pay_in_advance: bool = False,
    trial_period: Decimal | None = None,
    bill_charges_monthly: bool | None = None,
    tax_codes: Sequence[str] | None = None,
    charges: Sequence[Mapping[str, Any]] = (),
    metadata: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Plan:
    now = _now(now)
    _plan_fields(
        {
            "name": name,
            "code": code,
            "interval": interval,
            "amount_cents": amount_cents,
            "amount_currency": amount_currency,
            "trial_period": trial_period,
        },
        creating=True,
    )
    assert amount_cents is not None  # _plan_fields refused a missing amount
    bill_charges_monthly = _bill_charges_monthly(interval, bill_charges_monthly)
    if Plan.live.filter(code=code).exists():
        raise PlansError.field("code", "value_already_exist")
    taxes = _taxes_by_codes(tax_codes)
    with _code_taken_is_refused():
        plan = Plan.objects.create(
            name=name,
            code=code,
            interval=interval,
            amount=Money(from_cents(amount_cents, amount_currency), amount_currency),
            description=description or "",
            invoice_display_name=invoice_display_name or "",
            pay_in_advance=bool(pay_in_advance),
            trial_period=trial_period or Decimal(0),
            bill_charges_monthly=bill_charges_monthly,
            metadata=metadata_clean(metadata) if metadata is not None else None,
        )
    plan.taxes.set(taxes)
    _charges_sync(plan, charges, attached=False, now=now)
    return plan


# Plan attributes that decide which periods exist and how they are billed.
_FROZEN_PLAN_FIELDS = ("interval", "amount_currency", "pay_in_advance", "bill_charges_monthly", "trial_period")


@transaction.atomic
def plan_update(
    *, plan: Plan, now: datetime | None = None, cascade_updates: bool | None = None, **changes: Any
) -> Plan:
    """Change a plan; only the keys given change. `charges`, when given, is the whole new list
    (see _charges_sync). With live subscriptions the change is prospective (module docstring).

    `cascade_updates` (Lago's): absent, the change reaches the subscriptions on the plan itself,
    not those with overrides (as Lago); true, also the overrides whose value was the plan's old
    one (Lago's cascade, plans.cascade); false, no live subscription: each one still on the plan
    first gets an override with today's terms, so only new subscriptions take the change."""
    now = _now(now)
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    changes = {key: value for key, value in changes.items() if not (value is None and key != "bill_charges_monthly")}
    _plan_fields(changes, creating=False)
    if cascade_updates is False and _changes_terms(plan, changes):
        plan_pin_live_subscriptions(plan=plan)
    before = cascade.terms_of(plan) if cascade_updates else None
    attached = _has_live_subscriptions(plan)
    current: dict[str, Any] = {
        "interval": plan.interval,
        "amount_currency": str(plan.amount.currency),
        "pay_in_advance": plan.pay_in_advance,
        "bill_charges_monthly": plan.bill_charges_monthly,
        "trial_period": plan.trial_period,
    }
    interval = changes.get("interval", plan.interval)
    wanted = dict(current)
    for key in ("interval", "amount_currency", "pay_in_advance", "trial_period"):
        if key in changes:
            wanted[key] = changes[key]
    if "bill_charges_monthly" in changes or "interval" in changes:
        wanted["bill_charges_monthly"] = _bill_charges_monthly(
            interval, changes.get("bill_charges_monthly", plan.bill_charges_monthly)
        )
    wanted["trial_period"] = Decimal(wanted["trial_period"] or 0)
    if attached:
        # None and False both mean "charges billed with the plan" for bill_charges_monthly.
        frozen = [key for key in _FROZEN_PLAN_FIELDS if (wanted[key] or False) != (current[key] or False)]
        if frozen:
            raise PlansError({key: ["attached_to_subscriptions"] for key in frozen})
    if "code" in changes and changes["code"] != plan.code:
        if Plan.live.filter(code=changes["code"]).exclude(pk=plan.pk).exists():
            raise PlansError.field("code", "value_already_exist")
        plan.code = changes["code"]
        # Overrides carry their plan's code (the subscription's plan_code).
        plan.children.update(code=changes["code"])
    for key in ("name", "description", "invoice_display_name"):
        if key in changes:
            setattr(plan, key, changes[key] or "")
    if "metadata" in changes:
        plan.metadata = metadata_clean(changes["metadata"])
    plan.interval = wanted["interval"]
    plan.pay_in_advance = bool(wanted["pay_in_advance"])
    plan.trial_period = wanted["trial_period"]
    plan.bill_charges_monthly = wanted["bill_charges_monthly"]
    currency = wanted["amount_currency"]
    cents = changes.get("amount_cents")
    amount = from_cents(cents, currency) if cents is not None else plan.amount.amount
    plan.amount = Money(amount, currency)
    with _code_taken_is_refused():
        plan.save()
    if "tax_codes" in changes:
        plan.taxes.set(_taxes_by_codes(changes["tax_codes"]))
    if "charges" in changes:
        _charges_sync(plan, changes["charges"], attached=attached, now=now)
    if before is not None:
        cascade.cascade_to_overrides(plan=plan, before=before, now=now)
    plan.refresh_from_db()
    return plan


# Keys that do not change what a subscription pays or how it is billed.
_NEUTRAL_KEYS = {"name", "code", "description", "invoice_display_name", "metadata"}


def _changes_terms(plan: Plan, changes: Mapping[str, Any]) -> bool:
    return any(key not in _NEUTRAL_KEYS for key in changes)


@transaction.atomic
def plan_delete(*, plan: Plan, now: datetime | None = None) -> Plan:
    """Soft-delete a plan (Lago's DELETE /plans/{code}): its active subscriptions are terminated
    now (and billed by invoicing), its pending ones canceled, its charges retired. The code is
    free for a new plan; invoices keep pointing at this one."""
    from .subscriptions import subscription_terminate

    now = _now(now)
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    if plan.deleted_at is not None:
        return plan
    # The plan and its subscriptions' overrides (children) go together.
    family = [plan, *plan.children.filter(deleted_at__isnull=True)]
    subscriptions = Subscription.objects.filter(plan__in=family, status__in=LIVE_STATUSES).order_by("status")
    for subscription in subscriptions:
        subscription.refresh_from_db()
        if subscription.status in LIVE_STATUSES:
            subscription_terminate(subscription=subscription, now=now)
    retired = Charge.objects.filter(plan__in=family, deleted_at__isnull=True)
    in_advance_metric_ids = set(retired.filter(pay_in_advance=True).values_list("billable_metric_id", flat=True))
    retired.update(deleted_at=now)
    pay_in_advance_flags_sync(metric_ids=in_advance_metric_ids)
    Plan.objects.filter(pk__in=[member.pk for member in family]).update(deleted_at=now, updated_at=now)
    plan.refresh_from_db()
    return plan


@transaction.atomic
def plan_metadata_set(*, plan: Plan, metadata: Any, merge: bool) -> Plan:
    """Lago's POST (replace) and PATCH (merge) /plans/{code}/metadata."""
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    plan.metadata = metadata_set(plan.metadata, metadata, merge=merge)
    plan.save(update_fields=["metadata", "updated_at"])
    return plan


@transaction.atomic
def plan_metadata_delete(*, plan: Plan, key: str | None = None) -> Plan:
    """Lago's DELETE /plans/{code}/metadata (all: null) and /metadata/{key}; 404
    metadata_not_found when the plan has none."""
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    if key is None:
        plan.metadata = None
    elif plan.metadata is None:
        raise NotFoundError("metadata")
    else:
        plan.metadata = metadata_without(plan.metadata, key)
    plan.save(update_fields=["metadata", "updated_at"])
    return plan


# Subscriptions: re-exported so `plans.services` is the one place to look for state changes.
from .subscriptions import (  # noqa: E402
    subscription_create,
    subscription_terminate,
    subscription_update,
    subscriptions_activate_due,
)

__all__ = [
    "add_on_create",
    "add_on_delete",
    "add_on_update",
    "applied_coupon_create",
    "applied_coupon_terminate",
    "coupon_create",
    "coupon_delete",
    "coupon_is_usable",
    "coupon_update",
    "charges_retire_for_metric",
    "customer_taxes_set",
    "pay_in_advance_flags_sync",
    "plan_create",
    "plan_delete",
    "plan_duplicate",
    "plan_metadata_delete",
    "plan_metadata_set",
    "subscription_charge_update",
    "plan_update",
    "subscription_create",
    "subscription_terminate",
    "subscription_update",
    "subscriptions_activate_due",
    "tax_create",
    "tax_delete",
    "tax_update",
    # Private, but `manage.py sync_pay_in_advance_flags` reads it from here.
    "_metrics_priced_in_advance",
]
