"""State changes of add-ons, the one-off items invoiced on their own; invoices already issued
keep their amounts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from djmoney.money import Money

from billing_project.money import from_cents, is_currency

from ._service_helpers import _check_cents, _code_taken_is_refused, _now, _taxes_by_codes
from .errors import PlansError
from .models import AddOn


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
