"""Fixed charges (Lago, January 2026: app/models/fixed_charge.rb): a plan's recurring fees per
add-on with units (seats, a platform fee), priced by a standard, graduated or volume model over
the units, billed in advance or in arrears, prorated or not. A subscription may change its
units: each change is a row of FixedChargeUnits (append-only: the units from `effective_at` on),
so an invoice prices the units as they stood over its period (prorated by days when the charge
is) and a change never rewrites the past.

Pricing lives in invoicing.fixed_charges; this module holds the rows and their validation.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from billing_project.fields import units_field

from . import charge_models
from .errors import NotFoundError, PlansError

FIXED_CHARGE_MODELS = ("standard", "graduated", "volume")
MAX_UNITS = Decimal("1e12")


class FixedCharge(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.ForeignKey("plans.Plan", on_delete=models.CASCADE, related_name="fixed_charges")
    add_on = models.ForeignKey("plans.AddOn", on_delete=models.PROTECT, related_name="fixed_charges")
    code = models.CharField(max_length=255)
    invoice_display_name = models.CharField(max_length=255, blank=True)
    charge_model = models.CharField(max_length=16)
    properties = models.JSONField(default=dict)
    units = units_field()
    pay_in_advance = models.BooleanField(default=False)
    prorated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "plans"
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "code"], condition=Q(deleted_at__isnull=True), name="fixed_charge_code_unique_per_plan"
            ),
            models.CheckConstraint(condition=Q(units__gte=0), name="fixed_charge_units_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.plan_id}/{self.code}"


class FixedChargeUnits(models.Model):
    """A subscription's units of a fixed charge from `effective_at` on (until the next row)."""

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE, related_name="fixed_charge_units")
    fixed_charge = models.ForeignKey(FixedCharge, on_delete=models.CASCADE, related_name="subscription_units")
    units = units_field()
    effective_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "plans"
        ordering = ["effective_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "fixed_charge", "effective_at"], name="fixed_charge_units_once_per_instant"
            ),
            models.CheckConstraint(condition=Q(units__gte=0), name="fixed_charge_units_row_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.fixed_charge_id}: {self.units} from {self.effective_at:%Y-%m-%d}"


def _units(value: Any, field: str = "units") -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PlansError.field(field, "value_is_invalid")
    try:
        units = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise PlansError.field(field, "value_is_invalid") from None
    if not units.is_finite() or units < 0 or units > MAX_UNITS:
        raise PlansError.field(field, "value_is_invalid")
    return units


def _text(value: Any, field: str, *, required: bool = False) -> str:
    if value in (None, ""):
        if required:
            raise PlansError.field(field, "value_is_mandatory")
        return ""
    if not isinstance(value, str) or len(value) > 255 or "\x00" in value or (field == "code" and "/" in value):
        raise PlansError.field(field, "value_is_invalid")
    return value


def _properties(charge_model: str, value: Any) -> dict[str, Any]:
    if charge_model not in FIXED_CHARGE_MODELS:
        raise PlansError.field("charge_model", "value_is_invalid")
    properties = dict(value) if isinstance(value, Mapping) else charge_models.default_properties(charge_model)
    errors = charge_models.validate_properties(charge_model, properties)
    if errors:
        raise PlansError({f"properties.{key}": codes for key, codes in errors.items()})
    return charge_models.clean_properties(charge_model, properties)


def live_fixed_charges(plan: Any) -> Any:
    return FixedCharge.objects.filter(plan=plan, deleted_at__isnull=True).select_related("add_on")


def subscription_fixed_charges(subscription: Any) -> Any:
    """The fixed charges a subscription bills: its plan's, or for an override plan (a child
    plan, plans.overrides) without its own, its parent's."""
    plan = subscription.plan
    rows = live_fixed_charges(plan)
    if plan.parent_id is not None and not rows.exists():
        return live_fixed_charges(plan.parent_id)
    return rows


def fixed_charge_find(*, plan: Any, code: str) -> FixedCharge:
    row = live_fixed_charges(plan).filter(code=code).first()
    if row is None:
        raise NotFoundError("fixed_charge")
    return row


def fixed_charge_create(*, plan: Any, data: Mapping[str, Any]) -> FixedCharge:
    """Lago's POST /plans/{code}/fixed_charges: an add-on (by add_on_code or add_on_id), a code
    (the add-on's by default), a model with its properties, units (default 0)."""
    from .models import AddOn

    add_on = None
    if data.get("add_on_id"):
        add_on_id = _uuid(data["add_on_id"])
        add_on = AddOn.live.filter(pk=add_on_id).first() if add_on_id is not None else None
    elif data.get("add_on_code"):
        add_on = AddOn.live.filter(code=str(data["add_on_code"])).first()
    else:
        raise PlansError.field("add_on", "value_is_mandatory")
    if add_on is None:
        raise NotFoundError("add_on")
    charge_model = str(data.get("charge_model") or "standard")
    row = FixedCharge(
        plan=plan,
        add_on=add_on,
        code=_text(data.get("code") or add_on.code, "code", required=True),
        invoice_display_name=_text(data.get("invoice_display_name"), "invoice_display_name"),
        charge_model=charge_model,
        properties=_properties(charge_model, data.get("properties")),
        units=_units(data.get("units") if data.get("units") is not None else 0),
        pay_in_advance=_flag(data.get("pay_in_advance"), "pay_in_advance"),
        prorated=_flag(data.get("prorated"), "prorated"),
    )
    _in_advance_check(plan, row)
    return _save(row)


def fixed_charge_update(*, fixed_charge: FixedCharge, data: Mapping[str, Any]) -> FixedCharge:
    """Lago's PUT: display name, model and properties, units (the plan's default), flags."""
    if "invoice_display_name" in data:
        fixed_charge.invoice_display_name = _text(data.get("invoice_display_name"), "invoice_display_name")
    if data.get("charge_model") or "properties" in data:
        fixed_charge.charge_model = str(data.get("charge_model") or fixed_charge.charge_model)
        fixed_charge.properties = _properties(
            fixed_charge.charge_model, data.get("properties") or fixed_charge.properties
        )
    if data.get("units") is not None:
        fixed_charge.units = _units(data["units"])
    for flag in ("pay_in_advance", "prorated"):
        if data.get(flag) is not None:
            setattr(fixed_charge, flag, _flag(data[flag], flag))
    _in_advance_check(fixed_charge.plan, fixed_charge)
    return _save(fixed_charge)


def fixed_charge_delete(*, fixed_charge: FixedCharge) -> FixedCharge:
    fixed_charge.deleted_at = timezone.now()
    fixed_charge.save(update_fields=["deleted_at", "updated_at"])
    return fixed_charge


def _flag(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise PlansError.field(field, "value_is_invalid")
    return value


def _in_advance_check(plan: Any, row: FixedCharge) -> None:
    """Billed in advance with the plan's fee: a plan billed in arrears has no invoice at the
    start of its periods to carry it (Tollgate bills in-advance fixed charges on plans paid in
    advance only)."""
    if row.pay_in_advance and not plan.pay_in_advance:
        raise PlansError.field("pay_in_advance", "not_supported_on_plan_in_arrears")


def _save(row: FixedCharge) -> FixedCharge:
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        raise PlansError.field("code", "value_already_exist") from None
    return row


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def units_at(subscription: Any, fixed_charge: FixedCharge, at: datetime) -> Decimal:
    """The subscription's units of `fixed_charge` at `at` (the plan's units before any change)."""
    row = (
        FixedChargeUnits.objects.filter(subscription=subscription, fixed_charge=fixed_charge, effective_at__lte=at)
        .order_by("-effective_at", "-id")
        .first()
    )
    return row.units if row is not None else fixed_charge.units


def units_timeline(
    subscription: Any, fixed_charge: FixedCharge, start: datetime, end: datetime
) -> list[tuple[datetime, Decimal]]:
    """(from, units) segments covering [start, end): the units at `start`, then each change."""
    segments = [(start, units_at(subscription, fixed_charge, start))]
    for row in FixedChargeUnits.objects.filter(
        subscription=subscription, fixed_charge=fixed_charge, effective_at__gt=start, effective_at__lt=end
    ).order_by("effective_at", "id"):
        segments.append((row.effective_at, row.units))
    return segments


@transaction.atomic
def subscription_fixed_charge_units_set(
    *, subscription: Any, fixed_charge: FixedCharge, units: Any, effective_at: datetime
) -> FixedChargeUnits:
    """The subscription's units from `effective_at` on (a second change at the same instant
    replaces the first)."""
    value = _units(units)
    row, _ = FixedChargeUnits.objects.update_or_create(
        subscription=subscription, fixed_charge=fixed_charge, effective_at=effective_at, defaults={"units": value}
    )
    return row
