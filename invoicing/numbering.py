"""Invoice numbers: gapless and unique, assigned at finalization (django-sequences).

A sequence row is incremented inside the finalizing transaction and stays locked until it
commits, so concurrent finalizations queue on it and a rolled-back one gives its number back:
no gaps, no duplicates. Per customer (Lago's default): `<PREFIX>-<customer seq>-<invoice seq>`,
each at least 3 digits; per organization: `<PREFIX>-<YYYYMM>-<seq>` with one organization-wide
counter. Drafts are `<PREFIX>-DRAFT`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date
from uuid import UUID

from django.db import connection, transaction
from sequences import get_next_value, get_next_values
from sequences.models import Sequence

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


class ReservedNumbers:
    """The values a batch of finalizations takes from several sequences, reserved in one statement
    (numbers_reserve) inside the batch's transaction: each sequence row stays locked until that
    transaction ends, and a rollback gives every value back. Gapless only if every reserved value
    is taken: the batch checks `left()` before it commits (and rolls back otherwise)."""

    def __init__(self, ranges: dict[str, tuple[int, int]]) -> None:
        self._next = {name: first for name, (first, _) in ranges.items()}
        self._last = {name: last for name, (_, last) in ranges.items()}

    def take(self, name: str) -> int | None:
        """The sequence's next reserved value; None when none is left (the caller reads one)."""
        value = self._next.get(name)
        if value is None or value > self._last[name]:
            return None
        self._next[name] = value + 1
        return value

    def left(self) -> int:
        return sum(self._last[name] - value + 1 for name, value in self._next.items())


def numbers_reserve(customers: Iterable[Customer], organization: Organization) -> ReservedNumbers:
    """One value per invoice about to be finalized, for each of `customers` (one entry per
    invoice), and as many of the organization's series under per-organization numbering: one
    statement (PostgreSQL; elsewhere one per sequence). The rows are locked in name order, so
    concurrent batches never wait on each other in a cycle over these rows."""
    assert transaction.get_connection().in_atomic_block, "numbers are reserved inside the finalizing transaction"
    counts = Counter(_customer_invoice_sequence(customer) for customer in customers)
    if counts and organization.document_numbering == DocumentNumbering.PER_ORGANIZATION:
        counts[ORGANIZATION_INVOICE_SEQUENCE] = sum(counts.values())
    if not counts:
        return ReservedNumbers({})
    names = sorted(counts)
    if connection.vendor != "postgresql":
        lasts = {name: get_next_values(counts[name], name)[-1] for name in names}
    else:
        table = connection.ops.quote_name(Sequence._meta.db_table)
        # django-sequences' own upsert (get_next_values), for many rows: a new sequence starts at 1.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (name, last) SELECT * FROM unnest(%s::text[], %s::bigint[]) ORDER BY 1 "
                f"ON CONFLICT (name) DO UPDATE SET last = {table}.last + EXCLUDED.last RETURNING name, last",
                [names, [counts[name] for name in names]],
            )
            lasts = dict(cursor.fetchall())
    return ReservedNumbers({name: (lasts[name] - counts[name] + 1, lasts[name]) for name in names})


def _next(name: str, reserved: ReservedNumbers | None) -> int:
    value = reserved.take(name) if reserved is not None else None
    return value if value is not None else get_next_value(name)


def invoice_number_assign(
    *, invoice: Invoice, organization: Organization, issuing_date: date, reserved: ReservedNumbers | None = None
) -> str:
    """Give `invoice` its sequential ids and number (not saved). Call inside the finalizing
    transaction, after every check that could still refuse the finalization. `reserved`: values
    the caller's transaction reserved already (numbers_reserve); without one left, one is read."""
    assert transaction.get_connection().in_atomic_block, "numbers are assigned inside the finalizing transaction"
    customer = invoice.customer
    prefix = organization.document_number_prefix
    invoice.sequential_id = _next(_customer_invoice_sequence(customer), reserved)
    if organization.document_numbering == DocumentNumbering.PER_ORGANIZATION:
        invoice.organization_sequential_id = _next(ORGANIZATION_INVOICE_SEQUENCE, reserved)
        invoice.number = f"{prefix}-{issuing_date:%Y%m}-{invoice.organization_sequential_id:03d}"
    else:
        invoice.number = f"{prefix}-{customer_sequential_id(customer):03d}-{invoice.sequential_id:03d}"
    return invoice.number


def _sequential_ids_write(customers: list[Customer]) -> None:
    """The customers' new sequential ids written (no signal, as bulk_update sends none). On
    PostgreSQL one UPDATE ... FROM unnest: bulk_update builds a CASE of one WHEN per customer,
    which Django resolves in Python (1.2 s of a 2,000-customer first run, profiled)."""
    if connection.vendor != "postgresql":
        Customer.objects.bulk_update(customers, ["sequential_id"])
        return
    table = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} c SET sequential_id = v.seq FROM unnest(%s::uuid[], %s::bigint[]) AS v(id, seq) "
            "WHERE c.id = v.id",
            [[c.pk for c in customers], [c.sequential_id for c in customers]],
        )


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
            _sequential_ids_write(missing)
        assigned = dict(Customer.objects.filter(pk__in=list(by_pk)).values_list("pk", "sequential_id"))
    for pk, instances in by_pk.items():
        for customer in instances:
            customer.sequential_id = assigned.get(pk)
