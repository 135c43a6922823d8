"""A subscription's charge filters (Lago's /subscriptions/{external_id}/charges/{code}/filters):
read from the subscription's plan (its override's, or its plan's); an edit gives the subscription
its override first (plans.overrides.plan_override_ensure) and changes the override's copy of the
charge only, so the catalogue plan and the other subscriptions keep their filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from ._service_helpers import _now
from .charge_edits import _filter_spec, live_filter
from .errors import NotFoundError
from .models import Charge, ChargeFilter, Subscription
from .overrides import _override_charge, filter_specs, override_charge_update, plan_override_ensure


def subscription_charge(subscription: Subscription, charge_code: str) -> Charge:
    """The charge `charge_code` of the plan the subscription is billed on (404 charge_not_found)."""
    charge = (
        subscription.plan.charges.filter(code=charge_code, deleted_at__isnull=True)
        .select_related("billable_metric", "plan")
        .first()
    )
    if charge is None:
        raise NotFoundError("charge")
    return charge


def subscription_charge_filters(subscription: Subscription, charge_code: str) -> Any:
    charge = subscription_charge(subscription, charge_code)
    return charge.filters.filter(deleted_at__isnull=True).order_by("created_at", "id")


def subscription_charge_filter(subscription: Subscription, charge_code: str, filter_id: str) -> ChargeFilter:
    return live_filter(subscription_charge(subscription, charge_code), filter_id)


def _own_charge(subscription: Subscription, charge_code: str) -> Charge:
    subscription_charge(subscription, charge_code)  # 404 before any override is made
    override = plan_override_ensure(subscription=subscription)
    return _override_charge(override, charge_code)


def _own_filter(subscription: Subscription, charge_code: str, filter_id: str) -> tuple[Charge, ChargeFilter]:
    """The filter `filter_id` as the subscription's own: named on its current plan (the catalogue
    plan's filter before the first edit), then found on the override's copy by its values (a
    charge's live filters have distinct values: the copy keeps them)."""
    named = subscription_charge_filter(subscription, charge_code, filter_id)
    charge = _own_charge(subscription, charge_code)
    if named.charge_id == charge.pk:
        return charge, named
    copy = next((f for f in charge.filters.filter(deleted_at__isnull=True) if f.values == named.values), None)
    if copy is None:  # pragma: no cover - the copy was made from the same rows in this transaction
        raise NotFoundError("charge_filter")
    return charge, copy


def _save_filters(charge: Charge, specs: list[dict[str, Any]], now: datetime) -> None:
    override_charge_update(charge=charge, changes={"filters": specs}, now=now)


@transaction.atomic
def subscription_charge_filter_create(
    *, subscription: Subscription, charge_code: str, data: Mapping[str, Any], now: datetime | None = None
) -> ChargeFilter:
    """Add a filter to the subscription's own copy of the charge (validated as a plan edit)."""
    now = _now(now)
    charge = _own_charge(subscription, charge_code)
    before = set(charge.filters.filter(deleted_at__isnull=True).values_list("pk", flat=True))
    _save_filters(charge, [*filter_specs(charge), _filter_spec(data)], now)
    return charge.filters.filter(deleted_at__isnull=True).exclude(pk__in=before).get()


@transaction.atomic
def subscription_charge_filter_update(
    *,
    subscription: Subscription,
    charge_code: str,
    filter_id: str,
    data: Mapping[str, Any],
    now: datetime | None = None,
) -> ChargeFilter:
    """Change one filter of the subscription's own copy of the charge (values, properties,
    invoice_display_name; the keys not sent stay)."""
    now = _now(now)
    charge, own = _own_filter(subscription, charge_code, filter_id)
    specs = [_filter_spec(data, spec) if spec["id"] == str(own.pk) else spec for spec in filter_specs(charge)]
    _save_filters(charge, specs, now)
    return ChargeFilter.objects.get(pk=own.pk)


@transaction.atomic
def subscription_charge_filter_delete(
    *, subscription: Subscription, charge_code: str, filter_id: str, now: datetime | None = None
) -> ChargeFilter:
    """Retire one filter of the subscription's own copy of the charge (soft delete: fees already
    billed keep pointing at it)."""
    now = _now(now)
    charge, own = _own_filter(subscription, charge_code, filter_id)
    _save_filters(charge, [spec for spec in filter_specs(charge) if spec["id"] != str(own.pk)], now)
    return ChargeFilter.objects.get(pk=own.pk)
