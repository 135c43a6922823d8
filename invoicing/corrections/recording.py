"""At finalization, inside its transaction (invoice_finalized_in_tx): the lineage of the
invoice's fees, and the subscriptions' billed-through instants the late-usage trigger reads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Prefetch

from billing_project.bulk import Tail
from plans.models import ChargeFilter

from ..models import Fee, FeeType, Invoice, InvoiceType
from . import lineage
from .models import BilledThrough, FeeEvent, FeeEventSet, LateUsageMark

logger = logging.getLogger(__name__)

_BILLED = BilledThrough._meta.db_table
_MARKS = LateUsageMark._meta.db_table


def _period_fees(invoice_id: Any) -> list[Fee]:
    """A finalized invoice's period-end charge fees with what their scopes read (4 queries)."""
    return list(
        Fee.objects.filter(invoice_id=invoice_id, fee_type=FeeType.CHARGE, pay_in_advance=False)
        .select_related("subscription", "charge__billable_metric", "charge_filter")
        .prefetch_related(
            "charge__billable_metric__filters",
            Prefetch("charge__filters", queryset=ChargeFilter.objects.filter(deleted_at__isnull=True)),
        )
    )


def _entries(
    fees: Sequence[Fee], entries: list[lineage.Entry] | None = None, billed: dict[str, Any] | None = None
) -> tuple[list[lineage.Entry], dict[str, Any]]:
    """The period-end charge fees' lineage entries, and each subscription's billed-through instant
    (appended to `entries` and `billed` when given: several invoices' in one statement)."""
    entries = [] if entries is None else entries
    billed = {} if billed is None else billed
    for fee in fees:
        scope = lineage.period_fee_scope(fee)
        if scope is None:
            continue
        entries.append(lineage.Entry(tag=len(entries), fee_id=fee.pk, root_id=fee.pk, scope=scope))
        external_id = scope.external_subscription_id
        billed[external_id] = max(billed.get(external_id, scope.to_datetime), scope.to_datetime)
    return entries, billed


def _check(invoice_id: Any, fees: Sequence[Fee], entries: Sequence[lineage.Entry], selected: dict[int, int]) -> int:
    """A fee whose lineage disagrees with its events_count loses it; its subscription is marked."""
    events_count = {fee.pk: fee.events_count for fee in fees}
    disagreeing = {entry.fee_id for entry in entries if selected.get(entry.tag, 0) != events_count[entry.fee_id]}
    if disagreeing:
        logger.warning("lineage: %s fee(s) of invoice %s saw events committed meanwhile", len(disagreeing), invoice_id)
        FeeEventSet.objects.filter(fee_id__in=disagreeing).delete()
        FeeEvent.objects.filter(root_fee_id__in=disagreeing).delete()
        for entry in entries:
            if entry.fee_id in disagreeing:
                _mark(entry.scope.external_subscription_id, entry.scope.usage_from)
    return sum(selected.get(entry.tag, 0) for entry in entries)


def invoice_lineage_write(*, invoice_id: Any, fees: Sequence[Fee] | None = None) -> int:
    """Every period-end charge fee of a subscription invoice records the events it counted, and
    each subscription's billed-through instant moves forward: ONE statement for the invoice when
    the period run hands over its fees (in memory), four reads more otherwise (the period run
    joins that statement to the invoices' insert: invoices_lineage_tail).

    The lineage is read after the fees' aggregation, in a later statement: an event committed
    in between would be listed without being counted. Each fee's events_count tells: a fee
    whose lineage disagrees loses it (and its subscription is marked), so the next round prices
    the whole period against what was invoiced and bills exactly what is missing."""
    if connection.vendor != "postgresql":
        return 0
    if fees is None:
        fees = _period_fees(invoice_id)
    entries, billed = _entries(fees)
    if not entries:
        return 0
    return _check(invoice_id, fees, entries, lineage.lineage_insert(entries, billed_through=billed))


@dataclass
class PendingLineage:
    """The lineage of invoices being inserted: `tail` joins their insert statement
    (billing_project.bulk.insert_together); `check()` after it, as invoice_lineage_write checks
    each invoice. `parts`: (invoice id, its fees, its entries), the entries' tags unique across them."""

    parts: list[tuple[Any, Sequence[Fee], list[lineage.Entry]]]
    tail: Tail

    @property
    def invoice_ids(self) -> set[Any]:
        return {invoice_id for invoice_id, _, _ in self.parts}

    def check(self) -> int:
        counts = lineage.lineage_counts(self.tail.rows)
        return sum(_check(invoice_id, fees, entries, counts) for invoice_id, fees, entries in self.parts)


def invoices_lineage_tail(invoices: Sequence[tuple[Any, Sequence[Fee]]]) -> PendingLineage | None:
    """invoice_lineage_write of subscription invoices about to be finalized with their fees (in
    memory), as a part of their insert statement (one invoice, or a batch of the run): one tail
    for all their fees, checked invoice by invoice. None when there is nothing to write (no
    period-end charge fee, or not PostgreSQL)."""
    if connection.vendor != "postgresql":
        return None
    entries: list[lineage.Entry] = []
    billed: dict[str, Any] = {}
    parts: list[tuple[Any, Sequence[Fee], list[lineage.Entry]]] = []
    for invoice_id, fees in invoices:
        start = len(entries)
        _entries(fees, entries, billed)
        if len(entries) > start:
            parts.append((invoice_id, fees, entries[start:]))
    if not entries:
        return None
    ctes, select, params = lineage.lineage_insert_sql(entries, billed_through=billed)
    return PendingLineage(parts=parts, tail=Tail(ctes, select, params))


def billed_through_publish(periods: Iterable[tuple[str, datetime]], *, timeout: float = 10.0) -> bool:
    """Before a run bills periods: their ends become the subscriptions' billed-through instants
    (committed at once), then the run waits for every transaction writing events at that moment.

    Why: an ingestion transaction that checked "late?" against the old instant must be over
    before the run aggregates (so its events are counted); any later one sees the new instant,
    so its events of the period are marked for re-rating whatever the run counted (the lineage
    tells the rest). Inside a caller's transaction (tests) only the instants are written.
    False when a writer stayed open longer than `timeout` (the run goes on: the lineage check
    still catches an event counted twice or not at all, rarely)."""
    ends: dict[str, datetime] = {}
    for external_id, end in periods:
        ends[external_id] = max(ends.get(external_id, end), end)
    if not ends or connection.vendor != "postgresql":
        return True
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_BILLED} (external_subscription_id, billed_until) "
                "SELECT * FROM unnest(%s::text[], %s::timestamptz[]) ORDER BY 1 "
                "ON CONFLICT (external_subscription_id) DO UPDATE "
                f"SET billed_until = GREATEST({_BILLED}.billed_until, EXCLUDED.billed_until)",
                [list(ends), list(ends.values())],
            )
    if connection.in_atomic_block:
        return True
    from metrics.rollups import wait_for_event_writers  # the usage rollups' own wait (pg_locks)

    return wait_for_event_writers(timeout)


def _mark(external_subscription_id: str, earliest: Any) -> None:
    """Ask the next round to re-rate the subscription's periods ending after `earliest`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_MARKS} (external_subscription_id, earliest_timestamp, generation, created_at) "
            "VALUES (%s, %s, 1, clock_timestamp()) ON CONFLICT (external_subscription_id) DO UPDATE "
            f"SET earliest_timestamp = LEAST({_MARKS}.earliest_timestamp, EXCLUDED.earliest_timestamp), "
            f"generation = {_MARKS}.generation + 1",
            [external_subscription_id, earliest],
        )


def on_invoice_finalized(
    sender: Any,
    *,
    invoice_id: Any,
    fees: Sequence[Fee] | None = None,
    lineage_written: bool = False,
    **kwargs: Any,
) -> None:
    """invoice_finalized_in_tx: an original's lineage; a correction's pending decrease issued.
    `fees`: the period run's fees of a subscription invoice, in memory; `lineage_written`: the
    period run wrote their lineage with the invoices' insert (invoices_lineage_tail)."""
    if lineage_written:
        return
    if fees is not None:
        if all(fee.invoice is None or fee.invoice.invoice_type == InvoiceType.SUBSCRIPTION for fee in fees):
            invoice_lineage_write(invoice_id=invoice_id, fees=fees)
            return
    invoice_type = Invoice.objects.filter(pk=invoice_id).values_list("invoice_type", flat=True).first()
    if invoice_type == InvoiceType.SUBSCRIPTION:
        invoice_lineage_write(invoice_id=invoice_id)
    elif invoice_type == InvoiceType.CORRECTION:
        from .rerate import correction_invoice_finalized

        correction_invoice_finalized(invoice_id=invoice_id)
