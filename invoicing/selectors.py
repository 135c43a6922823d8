"""Reads of the invoicing app: what is due for billing at an instant (the windows of
invoicing.windows.due_windows), and which drafts are due for a refresh (late events) or for
finalization (grace period over). The "not billed yet" reads here only save work: the unique
InvoiceSubscription constraint is what guarantees one invoice per period.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Exists, F, Max, OuterRef, Prefetch, Q
from django.db.models.functions import Coalesce, Greatest

from customers.models import Organization
from metrics.models import BillableMetric, Event
from plans.models import Charge, Subscription, SubscriptionStatus

from . import billing, windows
from .models import Fee, Invoice, InvoiceStatus, InvoiceSubscription, InvoiceType, InvoicingReason


@dataclass(frozen=True)
class Due:
    subscription: Subscription
    window: windows.BillingWindow

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.subscription.pk, self.window.from_datetime, self.window.to_datetime, self.window.reason)


def final_reason(subscription: Subscription) -> str:
    """upgrading when a plan upgrade ended the subscription (its follower started at the very
    instant it ended, with no downgrade date), else subscription_terminating."""
    for follower in subscription.next_subscriptions.all():
        if (
            follower.downgrade_at is None
            and follower.started_at == subscription.terminated_at
            and follower.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED)
        ):
            return InvoicingReason.UPGRADING
    return InvoicingReason.SUBSCRIPTION_TERMINATING


def _billed_so_far(subscription_ids: list[Any]) -> dict[Any, windows.BilledSoFar]:
    """Per subscription, what its invoices cover already, in one query."""
    rows = (
        InvoiceSubscription.objects.filter(subscription_id__in=subscription_ids)
        .exclude(invoicing_reason__in=(InvoicingReason.IN_ADVANCE_CHARGE, InvoicingReason.PROGRESSIVE_BILLING))
        .values("subscription_id", "invoicing_reason")
        .annotate(last=Max("timestamp"))
        .order_by()
    )
    found: dict[Any, dict[str, Any]] = {}
    for row in rows:
        entry = found.setdefault(row["subscription_id"], {})
        reason = row["invoicing_reason"]
        if reason == InvoicingReason.SUBSCRIPTION_STARTING:
            entry["starting"] = True
        elif reason == InvoicingReason.SUBSCRIPTION_PERIODIC:
            entry["periodic_through"] = row["last"]
        else:
            entry["final"] = True
    return {pk: windows.BilledSoFar(**entry) for pk, entry in found.items()}


def _complete_terminated() -> Q:
    """A terminated subscription is done with when its final invoice exists and the boundary
    its final period starts at is billed, or was never billable (at or before its start or its
    recording): it is not even loaded by later runs."""
    billed_before = InvoiceSubscription.objects.filter(
        subscription_id=OuterRef(OuterRef("pk")),
        invoicing_reason=InvoicingReason.SUBSCRIPTION_PERIODIC,
        timestamp__gte=OuterRef("last_boundary"),
    )
    done = (
        InvoiceSubscription.objects.filter(subscription_id=OuterRef("pk"), invoicing_reason__in=windows.FINAL_REASONS)
        .annotate(last_boundary=Greatest(F("from_datetime"), Coalesce(F("charges_from_datetime"), F("from_datetime"))))
        .filter(
            Q(last_boundary__lte=OuterRef("recorded_at"))
            | Q(last_boundary__lte=OuterRef("started_at"))
            | Exists(billed_before)
        )
    )
    return Q(status=SubscriptionStatus.TERMINATED) & Q(Exists(done))


def due_subscriptions(
    *,
    at: datetime,
    customer_external_id: str | None = None,
    subscription_external_id: str | None = None,
    include_billed: bool = False,
) -> list[Due]:
    """Every subscription-period due at `at` (windows.due_windows, the catch-up policy), oldest
    period first. A subscription counts as it stood at `at` (a rerun at a past instant sees one
    terminated later as live); one whose invoices are complete is not loaded."""
    rows = Subscription.objects.filter(
        status__in=(SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED), started_at__lte=at
    ).exclude(_complete_terminated())
    if customer_external_id:
        rows = rows.filter(customer__external_id=customer_external_id, customer__deleted_at__isnull=True)
    if subscription_external_id:
        rows = rows.filter(external_id=subscription_external_id)
    rows = billing.with_billing_relations(rows).prefetch_related(
        Prefetch(
            "next_subscriptions",
            queryset=Subscription.objects.only(
                "pk", "previous_subscription_id", "status", "started_at", "downgrade_at"
            ),
        )
    )
    subscriptions = list(rows.order_by("created_at", "id"))
    ids = [s.pk for s in subscriptions]
    pending_swaps = dict(
        Subscription.objects.filter(
            status=SubscriptionStatus.PENDING, previous_subscription_id__in=ids, downgrade_at__isnull=False
        ).values_list("previous_subscription_id", "downgrade_at")
    )
    billed = _billed_so_far(ids)
    due = [
        Due(subscription, window)
        for subscription in subscriptions
        for window in windows.due_windows(
            subscription,
            at=at,
            final_reason=final_reason(subscription) if subscription.terminated_at else "",
            billed=billed.get(subscription.pk, windows.BilledSoFar()),
            swap_at=pending_swaps.get(subscription.pk),
        )
    ]
    # Oldest period first across subscriptions (numbers follow the calendar); the sort is
    # stable, so at one instant the subscriptions keep their order.
    due.sort(key=attrgetter("window.timestamp"))
    if include_billed:
        return due
    return split_billed(due)[0]


def split_billed(due: list[Due]) -> tuple[list[Due], list[Due]]:
    """(not billed yet, billed already), in one query."""
    if not due:
        return [], []
    billed = set(
        InvoiceSubscription.objects.filter(
            subscription_id__in=[d.subscription.pk for d in due],
            to_datetime__in={d.window.to_datetime for d in due},
        ).values_list("subscription_id", "from_datetime", "to_datetime", "invoicing_reason")
    )
    return [d for d in due if d.key not in billed], [d for d in due if d.key in billed]


def chunks(items: list[Due], size: int) -> Iterator[list[Due]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def drafts_with_late_events() -> list[Any]:
    """Drafts whose usage periods received events after the draft was last computed."""
    late = Event.objects.filter(
        external_subscription_id=OuterRef("subscription__external_id"),
        timestamp__gte=OuterRef("charges_from_datetime"),
        timestamp__lt=OuterRef("charges_to_datetime"),
        created_at__gt=OuterRef("invoice__updated_at"),
    )
    return list(
        InvoiceSubscription.objects.filter(invoice__status=InvoiceStatus.DRAFT, charges_from_datetime__isnull=False)
        .filter(Exists(late))
        .values_list("invoice_id", flat=True)
        .distinct()
    )


def drafts_due(*, now: datetime) -> list[Any]:
    """Drafts whose grace period has passed: issuing date (billing date + grace) reached in the
    customer's timezone. Selected loosely by date (a day early), checked precisely per draft."""
    # A correction draft (late usage under the `review` policy) waits for finance, whatever its date.
    candidates = (
        Invoice.objects.filter(status=InvoiceStatus.DRAFT, issuing_date__lte=(now + timedelta(days=1)).date())
        .exclude(invoice_type=InvoiceType.CORRECTION)
        .select_related("customer")
    )
    organization = Organization.current()
    due = []
    for invoice in candidates:
        tz = invoice.customer.applicable_timezone(organization)
        if now.astimezone(ZoneInfo(tz)).date() >= invoice.issuing_date:
            due.append(invoice.pk)
    return due


# Pay-in-advance events without a fee (the sweep of advance_charges.fees_sweep_missed), paged.
SWEEP_PAGE = 500

# Driven by the subscriptions and their live pay-in-advance charges, so each (subscription,
# metric code) pair is one range scan of the events' (external_subscription_id, code, timestamp)
# index over the window; the anti-join probes the fee's partial unique index (charge,
# subscription, pay_in_advance_event_transaction_id). Events a charge cannot price (a sum event
# without its field) are skipped here rather than priced again at every sweep. Paged by event id.
_MISSED_SQL = """
SELECT DISTINCT e.id, e.external_subscription_id, e.transaction_id
FROM {subscriptions} s
JOIN {charges} c ON c.plan_id = s.plan_id AND c.pay_in_advance AND c.deleted_at IS NULL
JOIN {metrics} m ON m.id = c.billable_metric_id AND m.deleted_at IS NULL
JOIN {events} e
    ON e.external_subscription_id = s.external_id AND e.code = m.code
    AND e.timestamp >= %(since)s AND e.timestamp < %(until)s
    AND e.timestamp >= s.started_at AND (s.terminated_at IS NULL OR e.timestamp < s.terminated_at)
WHERE s.status IN (%(active)s, %(terminated)s)
    AND (s.terminated_at IS NULL OR s.terminated_at > %(since)s)
    AND s.started_at < %(until)s
    AND e.created_at < %(settled)s
    AND e.id > %(after_id)s
    AND (m.aggregation_type = %(count_agg)s OR {has_field})
    AND NOT EXISTS (
        SELECT 1 FROM {fees} f
        WHERE f.charge_id = c.id AND f.subscription_id = s.id
            AND f.pay_in_advance_event_transaction_id = e.transaction_id
    )
ORDER BY e.id
LIMIT %(limit)s
"""


def missed_events(
    *, since: datetime, until: datetime, settled: datetime, after_id: int = 0, limit: int = SWEEP_PAGE
) -> list[tuple[int, str, str]]:
    """(event id, external_subscription_id, transaction_id) of events with a timestamp in
    [since, until), received before `settled`, that a live pay-in-advance charge of their
    subscription prices and that have no fee on it yet; ordered by id, after `after_id`."""
    params: dict[str, Any] = {
        "since": since,
        "until": until,
        "settled": settled,
        "after_id": after_id,
        "limit": limit,
        "active": SubscriptionStatus.ACTIVE,
        "terminated": SubscriptionStatus.TERMINATED,
        "count_agg": "count_agg",
    }
    # "The event carries the metric's field": jsonb's `?` on PostgreSQL; json_extract on SQLite
    # (the demo database), where the sweep is only ever run by hand.
    has_field = (
        "e.properties ? m.field_name"
        if connection.vendor == "postgresql"
        else "json_extract(e.properties, '$.\"' || m.field_name || '\"') IS NOT NULL"
    )
    sql = _MISSED_SQL.format(
        subscriptions=Subscription._meta.db_table,
        charges=Charge._meta.db_table,
        metrics=BillableMetric._meta.db_table,
        events=Event._meta.db_table,
        fees=Fee._meta.db_table,
        has_field=has_field,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(row[0], row[1], row[2]) for row in cursor.fetchall()]
