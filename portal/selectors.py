"""What the portal page shows one customer, read with the same code as the API: its issued
invoices and credit notes, the current usage of each active subscription (invoicing.usage, the
current_usage API's path) and its wallets. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing_project.money import format_money
from customers.models import Customer, PaymentProvider
from invoicing.models import CreditNote, Invoice, InvoiceStatus
from invoicing.models import PaymentStatus as InvoicePaymentStatus
from invoicing.usage import customer_usage
from invoicing.wallets.models import Wallet, WalletStatus
from payments.providers import stripe as stripe_provider
from plans.models import Subscription, SubscriptionStatus

SHOWN_INVOICE_STATUSES = (InvoiceStatus.FINALIZED, InvoiceStatus.VOIDED)
# How many of the newest documents the page lists (the rest: ask the issuer).
DOCUMENTS_SHOWN = 100


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    total: str
    due: str
    status: str
    payable: bool


@dataclass(frozen=True)
class UsageLine:
    name: str
    units: Decimal
    amount: str


@dataclass(frozen=True)
class SubscriptionUsage:
    subscription: Subscription
    from_date: date
    to_date: date
    lines: list[UsageLine]
    amount: str
    total: str


def _status_text(invoice: Invoice) -> str:
    if invoice.status == InvoiceStatus.VOIDED:
        return "Voided"
    if invoice.payment_dispute_lost_at is not None:
        return "Disputed"
    if invoice.payment_status == InvoicePaymentStatus.SUCCEEDED:
        return "Paid"
    if invoice.payment_overdue:
        return "Overdue"
    if invoice.payment_status == InvoicePaymentStatus.FAILED:
        return "Payment failed"
    return "Due"


def can_pay_online(customer: Customer) -> bool:
    return customer.payment_provider == PaymentProvider.STRIPE and stripe_provider.is_configured()


def invoice_is_payable(invoice: Invoice) -> bool:
    return (
        invoice.status == InvoiceStatus.FINALIZED
        and invoice.payment_status != InvoicePaymentStatus.SUCCEEDED
        and invoice.payment_dispute_lost_at is None
        and invoice.total_due_amount > 0
    )


def customer_invoices(customer: Customer) -> list[InvoiceRow]:
    online = can_pay_online(customer)
    rows = Invoice.objects.filter(customer=customer, status__in=SHOWN_INVOICE_STATUSES).order_by(
        "-issuing_date", "-created_at"
    )[:DOCUMENTS_SHOWN]
    return [
        InvoiceRow(
            invoice=invoice,
            total=format_money(invoice.total_amount, invoice.currency),
            due=format_money(invoice.total_due_amount, invoice.currency),
            status=_status_text(invoice),
            payable=online and invoice_is_payable(invoice),
        )
        for invoice in rows
    ]


def customer_credit_notes(customer: Customer) -> list[dict[str, Any]]:
    notes = CreditNote.objects.filter(customer=customer).select_related("invoice").order_by("-created_at")
    return [
        {
            "note": note,
            "credit": format_money(note.credit_amount, note.currency),
            "refund": format_money(note.refund_amount, note.currency),
            "total": format_money(note.total_amount, note.currency),
        }
        for note in notes[:DOCUMENTS_SHOWN]
    ]


def _local_day(moment: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(tz)).date()


def customer_current_usage(customer: Customer, *, at: datetime | None = None) -> list[SubscriptionUsage]:
    at = at or timezone.now()
    tz = customer.applicable_timezone()
    answer = []
    subscriptions = Subscription.objects.filter(customer=customer, status=SubscriptionStatus.ACTIVE).select_related(
        "plan"
    )
    for subscription in subscriptions.order_by("created_at"):
        usage = customer_usage(subscription=subscription, at=at)
        lines = [
            UsageLine(
                name=charge.charge.invoice_display_name or charge.billable_metric.name,
                units=charge.units.normalize(),
                amount=format_money(charge.amount, usage.currency),
            )
            for charge in usage.charges_usage
        ]
        answer.append(
            SubscriptionUsage(
                subscription=subscription,
                from_date=_local_day(usage.from_datetime, tz),
                # Periods are half-open: the last day shown is the one before the end.
                to_date=_local_day(usage.to_datetime - timedelta(seconds=1), tz),
                lines=lines,
                amount=format_money(usage.amount, usage.currency),
                total=format_money(usage.total_amount, usage.currency),
            )
        )
    return answer


def customer_wallets(customer: Customer) -> list[dict[str, Any]]:
    wallets = Wallet.objects.filter(customer=customer, status=WalletStatus.ACTIVE).order_by("priority", "created_at")
    return [
        {
            "wallet": wallet,
            "balance": format_money(wallet.balance, wallet.currency),
            "ongoing_balance": format_money(wallet.ongoing_balance, wallet.currency),
            "credits": wallet.credits_balance.normalize(),
        }
        for wallet in wallets
    ]
