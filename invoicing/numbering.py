"""Invoice numbers: gapless and unique, assigned at finalization (django-sequences).

A sequence row is incremented inside the finalizing transaction and stays locked until it
commits, so concurrent finalizations queue on it and a rolled-back one gives its number back:
no gaps, no duplicates. Per customer (Lago's default): `<PREFIX>-<customer seq>-<invoice seq>`,
each at least 3 digits; per organization: `<PREFIX>-<YYYYMM>-<seq>` with one organization-wide
counter. Drafts are `<PREFIX>-DRAFT`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from uuid import UUID

from django.db import transaction
from sequences import get_next_value, get_next_values

from customers.models import CUSTOMER_SEQUENCE, Customer, DocumentNumbering, Organization

from .models import Invoice

ORGANIZATION_INVOICE_SEQUENCE = "invoicing.invoice.organization"


def draft_number(organization: Organization) -> str:
    return f"{organization.document_number_prefix}-DRAFT"


def _customer_invoice_sequence(customer: Customer) -> str:
    return f"invoicing.invoice.customer.{customer.pk}"


def customer_sequential_id(customer: Customer) -> int:
    """The customer's number in per-customer invoice numbers, assigned on first use under the
    customer's row lock (two first invoices of one customer must agree on it)."""
    if customer.sequential_id is not None:
        return customer.sequential_id
    locked = Customer.objects.select_for_update().only("sequential_id").get(pk=customer.pk)
    if locked.sequential_id is None:
        locked.sequential_id = get_next_value(CUSTOMER_SEQUENCE)
        Customer.objects.filter(pk=customer.pk).update(sequential_id=locked.sequential_id)
    customer.sequential_id = locked.sequential_id
    return locked.sequential_id


def invoice_number_assign(*, invoice: Invoice, organization: Organization, issuing_date: date) -> str:
    """Give `invoice` its sequential ids and number (not saved). Call inside the finalizing
    transaction, after every check that could still refuse the finalization."""
    assert transaction.get_connection().in_atomic_block, "numbers are assigned inside the finalizing transaction"
    customer = invoice.customer
    prefix = organization.document_number_prefix
    invoice.sequential_id = get_next_value(_customer_invoice_sequence(customer))
    if organization.document_numbering == DocumentNumbering.PER_ORGANIZATION:
        invoice.organization_sequential_id = get_next_value(ORGANIZATION_INVOICE_SEQUENCE)
        invoice.number = f"{prefix}-{issuing_date:%Y%m}-{invoice.organization_sequential_id:03d}"
    else:
        invoice.number = f"{prefix}-{customer_sequential_id(customer):03d}-{invoice.sequential_id:03d}"
    return invoice.number


def customers_sequential_ids_assign(customers: Iterable[Customer]) -> None:
    """Give the customers that have none their sequential id, in one transaction and three
    queries whatever their number (a billing run does it per chunk, before the invoices)."""
    by_pk: dict[UUID, list[Customer]] = {}
    for customer in customers:
        if customer.sequential_id is None:
            by_pk.setdefault(customer.pk, []).append(customer)
    if not by_pk:
        return
    with transaction.atomic():
        missing = list(
            Customer.objects.select_for_update()
            .filter(pk__in=list(by_pk), sequential_id__isnull=True)
            .order_by("created_at", "pk")
            .only("pk", "sequential_id")
        )
        if missing:
            values = get_next_values(len(missing), CUSTOMER_SEQUENCE)
            for row, value in zip(missing, values, strict=True):
                row.sequential_id = value
            Customer.objects.bulk_update(missing, ["sequential_id"])
        assigned = dict(Customer.objects.filter(pk__in=list(by_pk)).values_list("pk", "sequential_id"))
    for pk, instances in by_pk.items():
        for customer in instances:
            customer.sequential_id = assigned.get(pk)
