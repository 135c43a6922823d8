"""Lago's cascade_updates=true: a plan's change also reaches its subscriptions' overrides, where
the override still holds the plan's old value (an overridden price stays). Lago's rules: amount
(app/services/plans/update_service.rb), charges added, removed and changed (Charges::UpdateChildrenJob)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from .charge_services import _filters_sync
from .models import Charge, ChargeFilter, Plan
from .overrides import charge_copy


def _filters_of(charge: Charge) -> list[tuple[Any, Any, str]]:
    rows = charge.filters.filter(deleted_at__isnull=True).order_by("created_at", "id")
    return sorted(((f.values, f.properties, f.invoice_display_name) for f in rows), key=repr)


@dataclass(frozen=True)
class Terms:
    amount: Decimal
    charges: dict[Any, dict[str, Any]]


def _charge_terms(charge: Charge) -> dict[str, Any]:
    return {
        "properties": charge.properties,
        "min_amount": charge.min_amount,
        "invoice_display_name": charge.invoice_display_name,
        "filters": _filters_of(charge),
    }


def terms_of(plan: Plan) -> Terms:
    """What an override is compared with: the plan's terms before the change."""
    live = plan.charges.filter(deleted_at__isnull=True)
    return Terms(amount=plan.amount.amount, charges={charge.pk: _charge_terms(charge) for charge in live})


def cascade_to_overrides(*, plan: Plan, before: Terms, now: datetime) -> int:
    """Carry the change from `before` to the plan's current terms into each live override.
    Returns the number of overrides changed."""
    plan.refresh_from_db()
    live = list(plan.charges.filter(deleted_at__isnull=True).order_by("created_at", "id"))
    changed = 0
    for child in plan.children.filter(deleted_at__isnull=True):
        touched = False
        if child.amount.amount == before.amount and plan.amount.amount != before.amount:
            child.amount = plan.amount
            child.save(update_fields=["amount", "updated_at"])
            touched = True
        copies = {c.parent_id: c for c in child.charges.filter(deleted_at__isnull=True)}
        for charge in live:
            copy = copies.get(charge.pk)
            old = before.charges.get(charge.pk)
            if copy is None:
                if old is None:  # a charge the plan gained
                    charge_copy(charge, plan=child, parent=charge)
                    touched = True
                continue
            if old is None:
                continue
            new = _charge_terms(charge)
            mine = _charge_terms(copy)
            for field in ("properties", "min_amount", "invoice_display_name"):
                if mine[field] == old[field] and new[field] != old[field]:
                    setattr(copy, field, new[field])
                    touched = True
            copy.save()
            if mine["filters"] == old["filters"] and new["filters"] != old["filters"]:
                specs = [
                    {"values": values, "properties": properties, "invoice_display_name": name}
                    for values, properties, name in new["filters"]
                ]
                _filters_sync(copy, specs, now)
                touched = True
        removed = [pk for pk in before.charges if pk not in {c.pk for c in live}]
        gone = Charge.objects.filter(plan=child, parent_id__in=removed, deleted_at__isnull=True)
        if gone.exists():
            ChargeFilter.objects.filter(charge__in=gone, deleted_at__isnull=True).update(deleted_at=now)
            gone.update(deleted_at=now)
            touched = True
        changed += touched
    return changed
