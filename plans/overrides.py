"""Per-subscription terms (Lago's plan_overrides, free here): a subscription's override is a child
plan (same code, `parent` set) copying its plan with the overridden values, charges copied with
`parent` set; the subscription points at it, so billing prices it without knowing overrides exist."""

# Used by plan edits too: a change that must not reach live subscriptions (cascade_updates false)
# first gives each live subscription of the plan its own copy of the current terms.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from djmoney.money import Money

from billing_project.money import from_cents, to_cents
from customers.locks import lock_customer

from ._service_helpers import _check_cents, _code_taken_is_refused, _now, _taxes_by_codes
from .charge_services import _charge_fields, _filters_sync, pay_in_advance_flags_sync
from .errors import NotFoundError, PlansError
from .models import Charge, ChargeFilter, Plan, Subscription, SubscriptionStatus

LIVE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)

# The plan attributes an override may change (Lago's Plans::OverrideService); the others stay
# the parent's, so the periods an override bills are those of its plan.
_PLAN_KEYS = ("name", "description", "invoice_display_name", "amount_cents", "trial_period", "tax_codes")
_CHARGE_KEYS = ("properties", "min_amount_cents", "invoice_display_name", "filters", "tax_codes")


def charge_spec(charge: Charge) -> dict[str, Any]:
    """The charge as a plan service spec (the API's shape), so an edit of one key resends the rest."""
    currency = str(charge.plan.amount.currency)
    return {
        "id": str(charge.pk),
        "code": charge.code,
        "billable_metric_id": str(charge.billable_metric_id),
        "charge_model": charge.charge_model,
        "properties": charge.properties,
        "pay_in_advance": charge.pay_in_advance,
        "invoiceable": charge.invoiceable,
        "prorated": charge.prorated,
        "min_amount_cents": to_cents(charge.min_amount, currency),
        "invoice_display_name": charge.invoice_display_name,
        "tax_codes": [tax.code for tax in charge.taxes.all()],
        "filters": filter_specs(charge),
    }


def filter_specs(charge: Charge) -> list[dict[str, Any]]:
    return [
        {
            "id": str(f.pk),
            "values": f.values,
            "properties": f.properties,
            "invoice_display_name": f.invoice_display_name,
        }
        for f in charge.filters.filter(deleted_at__isnull=True).order_by("created_at", "id")
    ]


def charge_copy(charge: Charge, *, plan: Plan, parent: Charge | None = None) -> Charge:
    """`charge` copied onto `plan` with its filters and taxes; `parent` is the catalogue charge
    an override's copy follows (None for a duplicated plan)."""
    copy = Charge.objects.create(
        plan=plan,
        parent=parent,
        code=charge.code,
        billable_metric_id=charge.billable_metric_id,
        charge_model=charge.charge_model,
        properties=charge.properties,
        pay_in_advance=charge.pay_in_advance,
        invoiceable=charge.invoiceable,
        prorated=charge.prorated,
        min_amount=charge.min_amount,
        invoice_display_name=charge.invoice_display_name,
    )
    copy.taxes.set(charge.taxes.all())
    ChargeFilter.objects.bulk_create(
        ChargeFilter(charge=copy, values=f.values, properties=f.properties, invoice_display_name=f.invoice_display_name)
        for f in charge.filters.filter(deleted_at__isnull=True).order_by("created_at", "id")
    )
    return copy


def _plan_copy(plan: Plan, *, parent: Plan | None, code: str | None = None, name: str | None = None) -> Plan:
    copy = Plan.objects.create(
        parent=parent,
        name=name or plan.name,
        code=code or plan.code,
        description=plan.description,
        interval=plan.interval,
        amount=plan.amount,
        pay_in_advance=plan.pay_in_advance,
        trial_period=plan.trial_period,
        bill_charges_monthly=plan.bill_charges_monthly,
        invoice_display_name=plan.invoice_display_name,
        metadata=plan.metadata if parent is not None else None,
    )
    copy.taxes.set(plan.taxes.all())
    for charge in plan.charges.filter(deleted_at__isnull=True).order_by("created_at", "id"):
        charge_copy(charge, plan=copy, parent=charge if parent is not None else None)
    return copy


@transaction.atomic
def plan_duplicate(*, plan: Plan, code: str, name: str) -> Plan:
    """A new catalogue plan with `plan`'s terms (the console's "duplicate plan")."""
    if Plan.live.filter(code=code).exists():
        raise PlansError.field("code", "value_already_exist")
    with _code_taken_is_refused():
        return _plan_copy(plan, parent=None, code=code, name=name)


def plan_override_ensure(*, subscription: Subscription) -> Plan:
    """The subscription's own plan: its override if it has one, else a new copy of its plan,
    attached to it (Lago's Subscriptions::Concerns::PlanOverrideConcern)."""
    plan = subscription.plan
    if plan.parent_id is not None:
        return plan
    override = _plan_copy(plan, parent=plan)
    subscription.plan = override
    subscription.save(update_fields=["plan", "updated_at"])
    return override


def plan_pin_live_subscriptions(*, plan: Plan) -> int:
    """Before a change that applies only to new subscriptions: each live subscription still on
    `plan` itself gets an override with today's terms. Returns how many were pinned."""
    live = Subscription.objects.filter(plan=plan, status__in=LIVE_STATUSES)
    # The lock order of every subscription change: customers first (in one order), then rows.
    for customer_id in sorted(set(live.values_list("customer_id", flat=True))):
        lock_customer(customer_id)
    rows = list(live.select_for_update(of=("self",)).order_by("pk"))
    for subscription in rows:
        subscription.plan = plan
        plan_override_ensure(subscription=subscription)
    return len(rows)


def _override_charge(plan: Plan, key: str) -> Charge:
    """An override's charge named by the catalogue charge's id (Lago's charge override `id`),
    its own id, or its code."""
    rows = plan.charges.filter(deleted_at__isnull=True).select_related("billable_metric", "plan")
    for charge in rows:
        if key in (str(charge.parent_id), str(charge.pk), charge.code):
            return charge
    raise NotFoundError("charge")


def override_charge_update(*, charge: Charge, changes: Mapping[str, Any], now: datetime) -> Charge:
    """Change an override's charge: properties, min_amount_cents, invoice_display_name, filters,
    tax_codes (its model, metric and timing stay the catalogue's), validated as the plan API."""
    spec = charge_spec(charge)
    for key in _CHARGE_KEYS:
        if key in changes and changes[key] is not None:
            spec[key] = changes[key]
    fields = _charge_fields(spec, charge.billable_metric, str(charge.plan.amount.currency))
    filters = fields.pop("filters")
    charge.properties = fields["properties"]
    charge.min_amount = fields["min_amount"]
    charge.invoice_display_name = fields["invoice_display_name"]
    charge.save()
    if changes.get("tax_codes") is not None:
        charge.taxes.set(_taxes_by_codes(changes["tax_codes"]))
    _filters_sync(charge, filters, now)
    return charge


def override_apply(*, plan: Plan, overrides: Mapping[str, Any], now: datetime | None = None) -> Plan:
    """Apply Lago's `plan_overrides` to an override plan: amount_cents, trial_period, name,
    description, invoice_display_name, tax_codes, charges [{id, properties, ...}] and
    minimum_commitment (stored as asked: plans bill no minimum commitment yet)."""
    now = _now(now)
    if plan.parent_id is None:  # pragma: no cover - callers pass plan_override_ensure's answer
        raise PlansError.field("plan_overrides", "value_is_invalid")
    if not isinstance(overrides, Mapping):
        raise PlansError.field("plan_overrides", "value_is_invalid")
    currency = str(plan.amount.currency)
    asked_currency = overrides.get("amount_currency")
    if asked_currency not in (None, "", currency):
        raise PlansError.field("amount_currency", "value_is_invalid")
    if "amount_cents" in overrides and overrides["amount_cents"] is not None:
        _check_cents("amount_cents", overrides["amount_cents"])
        plan.amount = Money(from_cents(overrides["amount_cents"], currency), currency)
    if overrides.get("trial_period") is not None:
        try:
            trial = Decimal(str(overrides["trial_period"]))
        except ArithmeticError:
            raise PlansError.field("trial_period", "value_is_invalid") from None
        if not trial.is_finite() or trial < 0 or trial >= 10**8 or trial != trial.quantize(Decimal("0.01")):
            raise PlansError.field("trial_period", "value_is_invalid")
        plan.trial_period = trial
    for key in ("name", "description", "invoice_display_name"):
        if overrides.get(key) is not None:
            if not isinstance(overrides[key], str):
                raise PlansError.field(key, "value_is_invalid")
            setattr(plan, key, overrides[key])
    if overrides.get("minimum_commitment") is not None:
        if not isinstance(overrides["minimum_commitment"], Mapping):
            raise PlansError.field("minimum_commitment", "value_is_invalid")
        _check_cents("amount_cents", overrides["minimum_commitment"].get("amount_cents"), required=False)
        plan.minimum_commitment_override = dict(overrides["minimum_commitment"])
    plan.save()
    if overrides.get("tax_codes") is not None:
        plan.taxes.set(_taxes_by_codes(overrides["tax_codes"]))
    charges = overrides.get("charges")
    if charges is not None:
        if not isinstance(charges, Sequence) or isinstance(charges, str | bytes):
            raise PlansError.field("charges", "value_is_invalid")
        for spec in charges:
            if not isinstance(spec, Mapping) or not spec.get("id"):
                raise PlansError.field("charges", "value_is_invalid")
            override_charge_update(charge=_override_charge(plan, str(spec["id"])), changes=spec, now=now)
    pay_in_advance_flags_sync(metric_ids=plan.charges.values_list("billable_metric_id", flat=True))
    return plan


@transaction.atomic
def subscription_overrides_set(
    *, subscription: Subscription, overrides: Mapping[str, Any], now: datetime | None = None
) -> Subscription:
    """Give a subscription its own terms (Lago's plan_overrides on POST/PUT /subscriptions)."""
    override = plan_override_ensure(subscription=subscription)
    override_apply(plan=override, overrides=overrides, now=now)
    subscription.refresh_from_db()
    return subscription


@transaction.atomic
def subscription_charge_update(
    *, subscription: Subscription, charge_code: str, changes: Mapping[str, Any], now: datetime | None = None
) -> Charge:
    """Lago's PUT /subscriptions/{external_id}/charges/{code}: the subscription's own copy of the
    charge changes (made on first use); the plan's charge and other subscriptions keep theirs."""
    now = _now(now)
    if not any(charge.code == charge_code for charge in subscription.plan.charges.filter(deleted_at__isnull=True)):
        raise NotFoundError("charge")
    override = plan_override_ensure(subscription=subscription)
    charge = _override_charge(override, charge_code)
    return override_charge_update(charge=charge, changes=changes, now=now)
