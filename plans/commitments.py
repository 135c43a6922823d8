"""A plan's minimum commitment (Lago's Commitment of type minimum_commitment): the least a
subscription pays per billing period, fees included; invoicing adds a `commitment` true-up fee
at the period's end when the period's fees fall short (invoicing.commitment).

`amount` is in major units of the plan's currency. Set or removed as a whole by the API
(`plan_minimum_commitment_set`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import Q

from billing_project.fields import amount_field
from billing_project.money import from_cents

from .errors import PlansError


class Commitment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.OneToOneField("plans.Plan", on_delete=models.CASCADE, related_name="minimum_commitment")
    amount = amount_field()
    invoice_display_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "plans"
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="commitment_not_negative")]

    def __str__(self) -> str:
        return f"{self.plan_id} {self.amount}"


def plan_commitment(plan: Any) -> Commitment | None:
    """The plan's commitment; an override plan without its own has its parent's."""
    try:
        return plan.minimum_commitment
    except Commitment.DoesNotExist:
        parent = getattr(plan, "parent", None)
        return plan_commitment(parent) if parent is not None else None


@transaction.atomic
def plan_minimum_commitment_set(*, plan: Any, data: Mapping[str, Any] | None) -> Commitment | None:
    """Lago's `minimum_commitment` object ({amount_cents, invoice_display_name}); None or {}
    removes it."""
    if not data:
        Commitment.objects.filter(plan=plan).delete()
        return None
    if not isinstance(data, Mapping):
        raise PlansError.field("minimum_commitment", "value_is_invalid")
    cents = data.get("amount_cents")
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0 or cents > 10**15:
        raise PlansError.field("minimum_commitment:amount_cents", "value_is_invalid")
    name = data.get("invoice_display_name") or ""
    if not isinstance(name, str) or len(name) > 255:
        raise PlansError.field("minimum_commitment:invoice_display_name", "value_is_invalid")
    amount = from_cents(Decimal(cents), str(plan.amount.currency))
    commitment, _ = Commitment.objects.update_or_create(
        plan=plan, defaults={"amount": amount, "invoice_display_name": name}
    )
    return commitment
