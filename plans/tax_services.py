"""State changes of taxes and of the taxes applied to customers: keyword-only, one transaction
each, refusals raised as plans.errors."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import ProtectedError

from customers.models import Customer

from ._service_helpers import _code_taken_is_refused, _taxes_by_codes
from .errors import PlansError
from .models import CustomerTax, Tax


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
