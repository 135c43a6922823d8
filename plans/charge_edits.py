"""One charge, or one charge filter, at a time (Lago's /plans/{code}/charges[/{code}][/filters]):
each edit resends the plan's whole charge list to plan_update, so the rules, the frozen fields
with live subscriptions and `cascade_updates` are those of a plan edit, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from .errors import NotFoundError, PlansError
from .models import Charge, ChargeFilter, Plan
from .overrides import charge_spec

# What PUT /plans/{code}/charges/{code} may change (Lago's Charges::UpdateService); the metric
# is the charge's for good.
_UPDATABLE = (
    "code",
    "charge_model",
    "properties",
    "pay_in_advance",
    "prorated",
    "invoiceable",
    "min_amount_cents",
    "invoice_display_name",
    "filters",
    "tax_codes",
)


def _specs(plan: Plan) -> list[dict[str, Any]]:
    return [charge_spec(c) for c in plan.charges.filter(deleted_at__isnull=True).order_by("created_at", "id")]


def _save(plan: Plan, specs: list[dict[str, Any]], cascade_updates: bool | None, now: datetime | None) -> Plan:
    from .services import plan_update

    return plan_update(plan=plan, charges=specs, cascade_updates=cascade_updates, now=now)


def live_charge(plan: Plan, code: str) -> Charge:
    charge = plan.charges.filter(code=code, deleted_at__isnull=True).select_related("billable_metric", "plan").first()
    if charge is None:
        raise NotFoundError("charge")
    return charge


@transaction.atomic
def plan_charge_create(
    *, plan: Plan, spec: Mapping[str, Any], cascade_updates: bool | None = None, now: datetime | None = None
) -> Charge:
    """Add a charge (its code given, or the metric's: charge_services.charge_code_next)."""
    before = set(plan.charges.filter(deleted_at__isnull=True).values_list("pk", flat=True))
    new = {key: value for key, value in spec.items() if key != "id"}
    _save(plan, [*_specs(plan), new], cascade_updates, now)
    created = plan.charges.filter(deleted_at__isnull=True).exclude(pk__in=before).get()
    return live_charge(plan, created.code)


@transaction.atomic
def plan_charge_update(
    *,
    charge: Charge,
    changes: Mapping[str, Any],
    cascade_updates: bool | None = None,
    now: datetime | None = None,
) -> Charge:
    plan = charge.plan
    specs = _specs(plan)
    for spec in specs:
        if spec["id"] == str(charge.pk):
            spec.update({key: changes[key] for key in _UPDATABLE if changes.get(key) is not None})
            if changes.get("charge_model") and "properties" not in changes:
                spec["properties"] = None  # another model starts from its defaults
    _save(plan, specs, cascade_updates, now)
    return Charge.objects.select_related("billable_metric", "plan").get(pk=charge.pk)


@transaction.atomic
def plan_charge_delete(*, charge: Charge, cascade_updates: bool | None = None, now: datetime | None = None) -> Charge:
    plan = charge.plan
    _save(plan, [spec for spec in _specs(plan) if spec["id"] != str(charge.pk)], cascade_updates, now)
    charge.refresh_from_db()
    return charge


def live_filter(charge: Charge, filter_id: str) -> ChargeFilter:
    for charge_filter in charge.filters.filter(deleted_at__isnull=True):
        if str(charge_filter.pk) == filter_id:
            return charge_filter
    raise NotFoundError("charge_filter")


def _filter_spec(data: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    spec = dict(base or {"properties": {}, "invoice_display_name": ""})
    for key in ("values", "properties", "invoice_display_name"):
        if data.get(key) is not None:
            spec[key] = data[key]
    if not spec.get("values"):
        raise PlansError.field("values", "value_is_mandatory")
    return spec


@transaction.atomic
def charge_filter_create(
    *, charge: Charge, data: Mapping[str, Any], cascade_updates: bool | None = None, now: datetime | None = None
) -> ChargeFilter:
    before = set(charge.filters.filter(deleted_at__isnull=True).values_list("pk", flat=True))
    spec = charge_spec(charge)
    plan_charge_update(
        charge=charge,
        changes={"filters": [*spec["filters"], _filter_spec(data)]},
        cascade_updates=cascade_updates,
        now=now,
    )
    return charge.filters.filter(deleted_at__isnull=True).exclude(pk__in=before).get()


@transaction.atomic
def charge_filter_update(
    *,
    charge_filter: ChargeFilter,
    data: Mapping[str, Any],
    cascade_updates: bool | None = None,
    now: datetime | None = None,
) -> ChargeFilter:
    charge = charge_filter.charge
    specs = [
        _filter_spec(data, spec) if spec["id"] == str(charge_filter.pk) else spec
        for spec in charge_spec(charge)["filters"]
    ]
    plan_charge_update(charge=charge, changes={"filters": specs}, cascade_updates=cascade_updates, now=now)
    return ChargeFilter.objects.get(pk=charge_filter.pk)


@transaction.atomic
def charge_filter_delete(
    *, charge_filter: ChargeFilter, cascade_updates: bool | None = None, now: datetime | None = None
) -> ChargeFilter:
    charge = charge_filter.charge
    specs = [spec for spec in charge_spec(charge)["filters"] if spec["id"] != str(charge_filter.pk)]
    plan_charge_update(charge=charge, changes={"filters": specs}, cascade_updates=cascade_updates, now=now)
    return ChargeFilter.objects.get(pk=charge_filter.pk)
