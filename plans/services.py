"""State changes of the catalog: taxes, plans with their charges, add-ons, coupons and applied
coupons. Subscriptions live in plans.subscriptions (re-exported at the bottom of this module).

Every function is keyword-only, runs in one transaction and raises plans.errors on refusal, so
the API, the admin and the demo share the same rules.

A plan with live (active or pending) subscriptions changes only prospectively: its price, its
charges' prices, filters, taxes and names may change and apply from the next invoice, but what
decides which periods exist or how they were already billed (interval, currency, pay in advance,
bill_charges_monthly, trial period; a charge's metric, model, pay_in_advance, prorated and
invoiceable flags) is refused with `attached_to_subscriptions`. Removed charges and filters are
soft-deleted so fees already billed keep pointing at them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone
from djmoney.money import Money

from billing_project.money import from_cents, is_currency
from customers.locks import lock_customer
from customers.models import Customer
from metrics import services as metrics_services
from metrics.models import AggregationType, BillableMetric

from . import charge_models
from .errors import NotFoundError, PlansError, merge_details
from .models import (
    AddOn,
    AppliedCoupon,
    Charge,
    ChargeFilter,
    Coupon,
    CouponFrequency,
    CouponType,
    CustomerTax,
    Plan,
    PlanInterval,
    SubscriptionStatus,
    Tax,
)

ALL_FILTER_VALUES = charge_models.ALL_FILTER_VALUES
LIVE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)
MONTHLY_CHARGES_INTERVALS = {PlanInterval.YEARLY, PlanInterval.SEMIANNUAL}

# Upper bound of amounts in minor units (MoneyField: 20 digits, 6 decimals).
MAX_CENTS = 10**14


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


@contextmanager
def _code_taken_is_refused() -> Iterator[None]:
    """Save inside this block: a concurrent create or rename that took the same code first
    loses at the unique index (in a savepoint) and is refused as Lago does, not as a 500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise PlansError.field("code", "value_already_exist") from None


# --------------------------------------------------------------------------------------------
# Taxes


def _taxes_by_codes(codes: Iterable[str] | None) -> list[Tax]:
    """The taxes named by `codes`, in order; 404 tax_not_found for an unknown code (as Lago)."""
    codes = list(dict.fromkeys(codes or []))
    found = {tax.code: tax for tax in Tax.objects.filter(code__in=codes)}
    missing = [code for code in codes if code not in found]
    if missing:
        raise NotFoundError("tax")
    return [found[code] for code in codes]


def _check_rate(rate: Decimal | None) -> Decimal:
    if rate is None:
        raise PlansError.field("rate", "value_is_mandatory")
    if not rate.is_finite() or rate < 0 or rate >= 100_000 or rate != rate.quantize(Decimal("0.0001")):
        raise PlansError.field("rate", "value_is_invalid")
    return rate


@transaction.atomic
def tax_create(
    *, code: str, name: str, rate: Decimal | None, description: str = "", applied_to_organization: bool = False
) -> Tax:
    errors: dict[str, list[str]] = {}
    if not code:
        errors["code"] = ["value_is_mandatory"]
    if not name:
        errors["name"] = ["value_is_mandatory"]
    if errors:
        raise PlansError(errors)
    rate = _check_rate(rate)
    if Tax.objects.filter(code=code).exists():
        raise PlansError.field("code", "value_already_exist")
    with _code_taken_is_refused():
        return Tax.objects.create(
            code=code,
            name=name,
            rate=rate,
            description=description or "",
            applied_to_organization=applied_to_organization,
        )


@transaction.atomic
def tax_update(*, tax: Tax, **changes: Any) -> Tax:
    """Change a tax. A new rate applies to invoices issued from now on; issued invoices keep the
    rate they were computed with (invoicing copies it onto each fee)."""
    tax = Tax.objects.select_for_update().get(pk=tax.pk)
    if "code" in changes and changes["code"] != tax.code:
        if not changes["code"]:
            raise PlansError.field("code", "value_is_mandatory")
        if Tax.objects.filter(code=changes["code"]).exclude(pk=tax.pk).exists():
            raise PlansError.field("code", "value_already_exist")
        tax.code = changes["code"]
    if "name" in changes:
        if not changes["name"]:
            raise PlansError.field("name", "value_is_mandatory")
        tax.name = changes["name"]
    if "rate" in changes:
        _check_rate(changes["rate"])
        tax.rate = changes["rate"]
    if "description" in changes:
        tax.description = changes["description"] or ""
    if "applied_to_organization" in changes and changes["applied_to_organization"] is not None:
        tax.applied_to_organization = bool(changes["applied_to_organization"])
    tax.save()
    return tax


@transaction.atomic
def tax_delete(*, tax: Tax) -> Tax:
    """Delete a tax: it stops applying to plans, charges, add-ons and customers. Fees already
    taxed keep their own copy of the rate."""
    snapshot = Tax(**{f.attname: getattr(tax, f.attname) for f in Tax._meta.concrete_fields})
    try:
        with transaction.atomic():
            tax.delete()
    except ProtectedError:  # a row elsewhere refuses to lose it
        raise PlansError(None, "tax_in_use") from None
    return snapshot


@transaction.atomic
def customer_taxes_set(*, customer: Customer, tax_codes: Sequence[str]) -> list[Tax]:
    """Replace the taxes applied to `customer` (Lago's customer `tax_codes`): they take
    precedence over the organization's default taxes for this customer's invoices."""
    taxes = _taxes_by_codes(tax_codes)
    CustomerTax.objects.filter(customer=customer).exclude(tax__in=taxes).delete()
    existing = set(CustomerTax.objects.filter(customer=customer).values_list("tax_id", flat=True))
    CustomerTax.objects.bulk_create(
        [CustomerTax(customer=customer, tax=tax) for tax in taxes if tax.pk not in existing]
    )
    return taxes


# --------------------------------------------------------------------------------------------
# Plans and charges


def _has_live_subscriptions(plan: Plan) -> bool:
    return plan.pk is not None and plan.subscriptions.filter(status__in=LIVE_STATUSES).exists()


def _check_cents(field: str, cents: Any, *, required: bool = True) -> None:
    if cents is None:
        if required:
            raise PlansError.field(field, "value_is_mandatory")
        return
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0 or cents >= MAX_CENTS:
        raise PlansError.field(field, "value_is_invalid")


def _metric_for(spec: Mapping[str, Any]) -> BillableMetric:
    """A charge names its metric by `billable_metric_id` (Lago's lago_id) or, as a convenience,
    `billable_metric_code`."""
    metric_id = spec.get("billable_metric_id")
    metric_code = spec.get("billable_metric_code")
    metrics = BillableMetric.live.all()
    metric = None
    if metric_id:
        try:
            metric = metrics.filter(pk=str(metric_id)).first()
        except (ValidationError, ValueError):  # not a uuid: no such metric
            metric = None
    elif metric_code:
        metric = metrics.filter(code=metric_code).first()
    else:
        raise PlansError.field("billable_metric_id", "value_is_mandatory")
    if metric is None:
        raise NotFoundError("billable_metric")
    return metric


def _check_filter_values(metric: BillableMetric, values: Any, errors: dict[str, list[str]]) -> None:
    """Filter values must name the metric's filter keys and values (or Lago's wildcard)."""
    allowed = {f.key: set(map(str, f.values)) for f in metric.filters.all()}
    if not isinstance(values, Mapping) or not values:
        merge_details(errors, {"filters": ["invalid_filter_values"]})
        return
    for key, chosen in values.items():
        if key not in allowed or not isinstance(chosen, list) or not chosen:
            merge_details(errors, {"filters": ["invalid_filter_values"]})
            return
        for value in chosen:
            if value != ALL_FILTER_VALUES and str(value) not in allowed[key]:
                merge_details(errors, {"filters": ["invalid_filter_values"]})
                return


def _charge_rules(
    *,
    metric: BillableMetric,
    charge_model: str,
    properties: Mapping[str, Any],
    pay_in_advance: bool,
    prorated: bool,
    min_amount_cents: int | None,
    filters: Sequence[Mapping[str, Any]],
) -> dict[str, list[str]]:
    """Lago's charge rules that need the metric; {} when the charge is valid."""
    errors: dict[str, list[str]] = {}
    merge_details(errors, charge_models.validate_properties(charge_model, properties))
    if errors.get("charge_model"):
        return errors
    if pay_in_advance:
        if (
            metric.aggregation_type not in charge_models.PAY_IN_ADVANCE_AGGREGATIONS
            or charge_model in charge_models.PAY_IN_ADVANCE_EXCLUDED_MODELS
        ):
            merge_details(errors, {"pay_in_advance": ["invalid_aggregation_type_or_charge_model"]})
        if min_amount_cents:
            merge_details(errors, {"min_amount_cents": ["not_compatible_with_pay_in_advance"]})
    if prorated and (not metric.recurring or charge_model not in charge_models.PRORATED_MODELS):
        merge_details(errors, {"prorated": ["invalid_billable_metric_or_charge_model"]})
    if charge_model == "dynamic" and metric.aggregation_type != AggregationType.SUM:
        merge_details(errors, {"charge_model": ["invalid_aggregation_type_or_charge_model"]})
    if charge_model == "percentage" and metric.aggregation_type == AggregationType.LATEST:
        merge_details(errors, {"billable_metric": ["invalid_value"]})
    seen_values = []
    for charge_filter in filters:
        values = charge_filter.get("values")
        _check_filter_values(metric, values, errors)
        if values in seen_values:
            merge_details(errors, {"filters": ["value_already_exist"]})
        seen_values.append(values)
        merged = {**properties, **(charge_filter.get("properties") or {})}
        merge_details(errors, charge_models.validate_properties(charge_model, merged))
    return errors


def _charge_fields(spec: Mapping[str, Any], metric: BillableMetric, currency: str) -> dict[str, Any]:
    charge_model = spec.get("charge_model")
    if not charge_model:
        raise PlansError.field("charge_model", "value_is_mandatory")
    if charge_model not in charge_models.CHARGE_MODELS:
        raise PlansError.field("charge_model", "value_is_invalid")
    raw_properties = spec.get("properties")
    if raw_properties is None:
        raw_properties = charge_models.default_properties(charge_model)
    if not isinstance(raw_properties, Mapping):
        raise PlansError.field("properties", "value_is_invalid")
    properties = charge_models.clean_properties(charge_model, raw_properties)
    filters = list(spec.get("filters") or [])
    _check_cents("min_amount_cents", spec.get("min_amount_cents"), required=False)
    pay_in_advance = bool(spec.get("pay_in_advance") or False)
    prorated = bool(spec.get("prorated") or False)
    errors = _charge_rules(
        metric=metric,
        charge_model=charge_model,
        properties=properties,
        pay_in_advance=pay_in_advance,
        prorated=prorated,
        min_amount_cents=spec.get("min_amount_cents"),
        filters=filters,
    )
    if errors:
        raise PlansError(errors)
    invoiceable = spec.get("invoiceable")
    return {
        "billable_metric": metric,
        "charge_model": charge_model,
        "properties": properties,
        "pay_in_advance": pay_in_advance,
        "prorated": prorated,
        # Only a pay-in-advance charge can skip invoices (its fees are collected as they happen).
        "invoiceable": True if invoiceable is None or not pay_in_advance else bool(invoiceable),
        "min_amount": from_cents(spec.get("min_amount_cents") or 0, currency),
        "invoice_display_name": spec.get("invoice_display_name") or "",
        "filters": [
            {
                "values": f.get("values"),
                "properties": charge_models.clean_properties(charge_model, f.get("properties") or {}),
                "invoice_display_name": f.get("invoice_display_name") or "",
            }
            for f in filters
        ],
    }


# The charge attributes that decide how periods were billed: frozen once subscriptions exist.
_FROZEN_CHARGE_FIELDS = ("billable_metric", "charge_model", "pay_in_advance", "prorated", "invoiceable")


def _filters_sync(charge: Charge, filters: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Keep filters whose `values` are unchanged (updating their price), soft-delete the others
    and add the new ones: fees already billed keep pointing at their filter."""
    existing = list(charge.filters.filter(deleted_at__isnull=True))
    kept = set()
    for spec in filters:
        match = next((f for f in existing if f.values == spec["values"] and f.pk not in kept), None)
        if match is None:
            match = ChargeFilter(charge=charge, values=spec["values"])
        match.properties = spec["properties"]
        match.invoice_display_name = spec["invoice_display_name"]
        match.save()
        kept.add(match.pk)
    ChargeFilter.objects.filter(pk__in=[f.pk for f in existing if f.pk not in kept]).update(deleted_at=now)


def _metrics_priced_in_advance(metric_ids: list[Any]) -> list[Any]:
    """Which of `metric_ids` a live pay-in-advance charge prices (the truth behind metrics'
    `has_pay_in_advance_charges` flag)."""
    return list(
        Charge.objects.filter(billable_metric_id__in=metric_ids, pay_in_advance=True, deleted_at__isnull=True)
        .values_list("billable_metric_id", flat=True)
        .distinct()
    )


def pay_in_advance_flags_sync(*, metric_ids: Iterable[Any] | None = None) -> int:
    """Recompute metrics' `has_pay_in_advance_charges` from the charges (for `metric_ids`, or
    every metric): ingestion announces a new event to invoicing when its metric's flag is set.
    Every service below that creates, changes or retires a pay-in-advance charge calls it in its
    own transaction; `manage.py sync_pay_in_advance_flags` runs it for every metric. Returns the
    number of flags changed."""
    ids = None if metric_ids is None else {metric_id for metric_id in metric_ids if metric_id is not None}
    if ids is not None and not ids:
        return 0
    return metrics_services.billable_metrics_pay_in_advance_sync(
        metric_ids=ids, priced_among=_metrics_priced_in_advance
    )


def _charges_sync(plan: Plan, specs: Sequence[Mapping[str, Any]], *, attached: bool, now: datetime) -> None:
    """Make the plan's live charges those of `specs`: a spec with the `id` of a live charge
    updates it, one without creates a charge, live charges not named are soft-deleted."""
    currency = str(plan.amount.currency)
    live = {str(c.pk): c for c in plan.charges.filter(deleted_at__isnull=True).select_related("billable_metric")}
    # Metrics whose pay-in-advance flag this change may turn (a charge that bills in advance
    # before or after it): the flags are synced at the end, in this transaction.
    in_advance_metric_ids = {c.billable_metric_id for c in live.values() if c.pay_in_advance}
    kept: set[str] = set()
    for spec in specs:
        if not isinstance(spec, Mapping):
            raise PlansError.field("charges", "value_is_invalid")
        metric = _metric_for(spec)
        fields = _charge_fields(spec, metric, currency)
        taxes = _taxes_by_codes(spec.get("tax_codes")) if spec.get("tax_codes") is not None else None
        filters = fields.pop("filters")
        charge = live.get(str(spec.get("id") or ""))
        if charge is not None and str(charge.pk) not in kept:
            if attached:
                changed = [name for name in _FROZEN_CHARGE_FIELDS if getattr(charge, name) != fields[name]]
                if changed:
                    raise PlansError({name: ["attached_to_subscriptions"] for name in changed})
            for name, value in fields.items():
                setattr(charge, name, value)
            charge.save()
        else:
            charge = Charge.objects.create(plan=plan, **fields)
        kept.add(str(charge.pk))
        if charge.pay_in_advance:
            in_advance_metric_ids.add(charge.billable_metric_id)
        if taxes is not None:
            charge.taxes.set(taxes)
        _filters_sync(charge, filters, now)
    Charge.objects.filter(pk__in=[pk for pk in live if pk not in kept]).update(deleted_at=now)
    pay_in_advance_flags_sync(metric_ids=in_advance_metric_ids)


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
        )
    plan.taxes.set(taxes)
    _charges_sync(plan, charges, attached=False, now=now)
    return plan


# Plan attributes that decide which periods exist and how they are billed.
_FROZEN_PLAN_FIELDS = ("interval", "amount_currency", "pay_in_advance", "bill_charges_monthly", "trial_period")


@transaction.atomic
def plan_update(*, plan: Plan, now: datetime | None = None, **changes: Any) -> Plan:
    """Change a plan; only the keys given change. `charges`, when given, is the whole new list
    (see _charges_sync). With live subscriptions the change is prospective (module docstring)."""
    now = _now(now)
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    changes = {key: value for key, value in changes.items() if not (value is None and key != "bill_charges_monthly")}
    _plan_fields(changes, creating=False)
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
    for key in ("name", "description", "invoice_display_name"):
        if key in changes:
            setattr(plan, key, changes[key] or "")
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
    plan.refresh_from_db()
    return plan


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
    for subscription in plan.subscriptions.filter(status__in=LIVE_STATUSES).order_by("status"):
        subscription.refresh_from_db()
        if subscription.status in LIVE_STATUSES:
            subscription_terminate(subscription=subscription, now=now)
    retired = plan.charges.filter(deleted_at__isnull=True)
    in_advance_metric_ids = set(retired.filter(pay_in_advance=True).values_list("billable_metric_id", flat=True))
    retired.update(deleted_at=now)
    pay_in_advance_flags_sync(metric_ids=in_advance_metric_ids)
    plan.deleted_at = now
    plan.save(update_fields=["deleted_at", "updated_at"])
    return plan


@transaction.atomic
def charges_retire_for_metric(*, billable_metric_id: Any, now: datetime | None = None) -> int:
    """A billable metric was deleted: its charges (and their filters) are soft-deleted, as Lago
    does, so no plan prices usage that is no longer measured. Returns the number retired."""
    now = _now(now)
    charges = Charge.objects.filter(billable_metric_id=billable_metric_id, deleted_at__isnull=True)
    ChargeFilter.objects.filter(charge__in=charges, deleted_at__isnull=True).update(deleted_at=now)
    retired = charges.update(deleted_at=now)
    pay_in_advance_flags_sync(metric_ids=[billable_metric_id])
    return retired


# --------------------------------------------------------------------------------------------
# Add-ons


@transaction.atomic
def add_on_create(
    *,
    name: str,
    code: str,
    amount_cents: int | None,
    amount_currency: str,
    description: str = "",
    invoice_display_name: str = "",
    tax_codes: Sequence[str] | None = None,
) -> AddOn:
    errors: dict[str, list[str]] = {}
    for key, value in (("name", name), ("code", code), ("amount_currency", amount_currency)):
        if not value:
            errors[key] = ["value_is_mandatory"]
    if amount_currency and not is_currency(amount_currency):
        errors["amount_currency"] = ["value_is_invalid"]
    if errors:
        raise PlansError(errors)
    _check_cents("amount_cents", amount_cents)
    assert amount_cents is not None  # refused just above when missing
    if AddOn.live.filter(code=code).exists():
        raise PlansError.field("code", "value_already_exist")
    taxes = _taxes_by_codes(tax_codes)
    with _code_taken_is_refused():
        add_on = AddOn.objects.create(
            name=name,
            code=code,
            amount=Money(from_cents(amount_cents, amount_currency), amount_currency),
            description=description or "",
            invoice_display_name=invoice_display_name or "",
        )
    add_on.taxes.set(taxes)
    return add_on


@transaction.atomic
def add_on_update(*, add_on: AddOn, **changes: Any) -> AddOn:
    """Change an add-on; invoices already issued for it keep their amounts."""
    add_on = AddOn.objects.select_for_update().get(pk=add_on.pk)
    changes = {key: value for key, value in changes.items() if value is not None}
    for key in ("name", "code", "amount_currency"):
        if key in changes and not changes[key]:
            raise PlansError.field(key, "value_is_mandatory")
    currency = changes.get("amount_currency", str(add_on.amount.currency))
    if not is_currency(currency):
        raise PlansError.field("amount_currency", "value_is_invalid")
    if "amount_cents" in changes:
        _check_cents("amount_cents", changes["amount_cents"])
    if "code" in changes and changes["code"] != add_on.code:
        if AddOn.live.filter(code=changes["code"]).exclude(pk=add_on.pk).exists():
            raise PlansError.field("code", "value_already_exist")
        add_on.code = changes["code"]
    for key in ("name", "description", "invoice_display_name"):
        if key in changes:
            setattr(add_on, key, changes[key] or "")
    amount = from_cents(changes["amount_cents"], currency) if "amount_cents" in changes else add_on.amount.amount
    add_on.amount = Money(amount, currency)
    with _code_taken_is_refused():
        add_on.save()
    if "tax_codes" in changes:
        add_on.taxes.set(_taxes_by_codes(changes["tax_codes"]))
    add_on.refresh_from_db()
    return add_on


@transaction.atomic
def add_on_delete(*, add_on: AddOn, now: datetime | None = None) -> AddOn:
    add_on.deleted_at = _now(now)
    add_on.save(update_fields=["deleted_at", "updated_at"])
    return add_on


# --------------------------------------------------------------------------------------------
# Coupons


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
    "coupon_update",
    "charges_retire_for_metric",
    "customer_taxes_set",
    "plan_create",
    "plan_delete",
    "plan_update",
    "subscription_create",
    "subscription_terminate",
    "subscription_update",
    "subscriptions_activate_due",
    "tax_create",
    "tax_delete",
    "tax_update",
]
