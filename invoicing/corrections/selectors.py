"""Reads of late usage: events that arrived too late to be billed (the events.errors digest and
the console's too-late list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from customers.models import Organization
from metrics.models import Event
from plans.models import Subscription

from ..models import Fee, Invoice, InvoiceStatus, InvoiceSubscription
from .models import FeeEvent, FeeEventSet

_SQL = f"""
SELECT DISTINCT ON (e.id) e.id, e.transaction_id, e.external_subscription_id, e.code, e.timestamp, e.created_at,
       inv.id, inv.number, i.charges_to_datetime
FROM {Event._meta.db_table} e
JOIN {Subscription._meta.db_table} s ON s.external_id = e.external_subscription_id
JOIN {InvoiceSubscription._meta.db_table} i ON i.subscription_id = s.id
    AND e.timestamp >= i.charges_from_datetime AND e.timestamp < i.charges_to_datetime
JOIN {Invoice._meta.db_table} inv ON inv.id = i.invoice_id AND inv.status = %(finalized)s
WHERE e.created_at >= %(from)s AND e.created_at < %(to)s
  AND i.charges_to_datetime + %(window)s < e.created_at
  AND NOT EXISTS (
    SELECT 1 FROM {Fee._meta.db_table} f JOIN {FeeEvent._meta.db_table} fe ON fe.root_fee_id = f.id
    WHERE f.invoice_id = inv.id AND fe.event_id = e.id
  )
  AND NOT EXISTS (
    SELECT 1 FROM {Fee._meta.db_table} f JOIN {FeeEventSet._meta.db_table} fs ON fs.fee_id = f.id
    WHERE f.invoice_id = inv.id AND e.id = ANY(fs.event_ids)
  )
ORDER BY e.id
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class TooLateEvent:
    id: int
    transaction_id: str
    external_subscription_id: str
    code: str
    timestamp: datetime
    received_at: datetime
    invoice_id: Any  # the finalized invoice of its period
    invoice_number: str
    period_ended_at: datetime


def too_late_event_rows(*, received_from: datetime, received_to: datetime, limit: int = 1000) -> list[TooLateEvent]:
    """Events received in [from, to) for a finalized period that ended more than the
    organization's late_usage_window_days before they arrived, and that no fee counted:
    reported (the events.errors digest, the console), never billed. Oldest received first.
    PostgreSQL only, as late usage is (the interval arithmetic): empty elsewhere."""
    if connection.vendor != "postgresql":
        return []
    window = timedelta(days=Organization.current().late_usage_window_days)
    with connection.cursor() as cursor:
        cursor.execute(
            _SQL,
            {
                "finalized": InvoiceStatus.FINALIZED,
                "from": received_from,
                "to": received_to,
                "window": str(window),  # an interval PostgreSQL reads ("90 days, 0:00:00")
                "limit": limit,
            },
        )
        return [TooLateEvent(*row) for row in cursor.fetchall()]


def too_late_events(*, received_from: datetime, received_to: datetime, limit: int = 1000) -> list[str]:
    """The transaction ids of too_late_event_rows (the events.errors digest's list)."""
    rows = too_late_event_rows(received_from=received_from, received_to=received_to, limit=limit)
    return [row.transaction_id for row in rows]
