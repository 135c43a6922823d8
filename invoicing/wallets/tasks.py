"""Celery tasks of the wallets: thin, idempotent (a rule's firing is unique in the database,
settling only moves pending rows, expiry only terminates active wallets)."""

from __future__ import annotations

from datetime import datetime, timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from . import services


def _at(at: str | None) -> datetime:
    return datetime.fromisoformat(at) if at else timezone.now()


@shared_task(name="invoicing.wallets.tasks.recurring_interval_top_ups")
def recurring_interval_top_ups(at: str | None = None) -> int:
    return services.recurring_interval_top_ups(now=_at(at))


@shared_task(name="invoicing.wallets.tasks.expire_wallets")
def expire_wallets(at: str | None = None) -> int:
    return services.wallets_expire(now=_at(at))


@shared_task(name="invoicing.wallets.tasks.refresh_ongoing_balances")
def refresh_ongoing_balances(customer_ids: list[str] | None = None) -> int:
    """Periodic (every wallet), and after an invoice consumed credits (its customer)."""
    return services.wallets_ongoing_balance_refresh(customer_ids=customer_ids)


@shared_task(name="invoicing.wallets.tasks.refresh_ongoing_balances_after_ingestion")
def refresh_ongoing_balances_after_ingestion(customer_ids: list[str]) -> int:
    """After an ingestion batch: these customers' wallets, unless refreshed within
    TOLLGATE_WALLET_ONGOING_REFRESH_SECONDS (a burst of batches costs one refresh; the periodic
    task picks up the tail of the burst)."""
    from django.conf import settings

    interval = timedelta(seconds=getattr(settings, "TOLLGATE_WALLET_ONGOING_REFRESH_SECONDS", 30))
    return services.wallets_ongoing_balance_refresh(customer_ids=customer_ids, fresher_than=interval)


@shared_task(name="invoicing.wallets.tasks.settle_paid_credit_invoices")
def settle_paid_credit_invoices() -> int:
    """The sweep behind the payment hook: purchased credits not settled (pending, or failed by an
    earlier failed payment) on a paid credit
    invoice settle (a lost hook delays the credits, never loses them)."""
    from ..models import Invoice, InvoiceType, PaymentStatus
    from .consumption import invoice_paid_settle_credits
    from .models import TransactionStatus

    ids = Invoice.objects.filter(
        invoice_type=InvoiceType.CREDIT,
        payment_status=PaymentStatus.SUCCEEDED,
        wallet_transactions__status__in=[TransactionStatus.PENDING, TransactionStatus.FAILED],
    ).values_list("pk", flat=True)
    settled = 0
    for invoice_id in list(set(ids)):
        with transaction.atomic():
            settled += invoice_paid_settle_credits(invoice=Invoice.objects.get(pk=invoice_id))
    return settled
