"""Dunning campaigns (Lago's, free here): the default campaign's ordered steps (e.g. 3, 7 and 14
days past due) remind customers of their overdue invoices.

Daily (payments.tasks.run_dunning_campaigns), for each customer not excluded and each currency of
its overdue invoices: the invoices that reached a step they have not had yet make the customer's
day. One payment request is then made for all its overdue invoices in that currency and e-mailed
(the campaign's bcc_emails in Bcc); with `retry_card`, those invoices are charged again. Each
invoice's step is a DunningAttempt row, unique per (step, invoice): a step is never done twice,
whatever reruns or races. An invoice that reached several steps at once (a new campaign, a missed
day) gets the latest; the earlier ones are recorded as skipped. A campaign with thresholds applies
to a currency only with a threshold there, and only while the customer's overdue balance in it is
at least the threshold (it stops below it); a campaign without thresholds applies to every
currency. Every step shows on the invoice's timeline (InvoiceEvent `dunning_step`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from customers.models import Customer
from invoicing.models import Invoice, InvoiceEvent, InvoiceStatus
from invoicing.models import PaymentStatus as InvoicePaymentStatus

from .errors import PaymentError
from .models import DunningAttempt, DunningCampaign, DunningStep, PaymentTrigger
from .payment_requests import payment_request_create

logger = logging.getLogger(__name__)


@dataclass
class DunningSummary:
    customers: int = 0
    payment_requests: int = 0
    steps: int = 0
    skipped_steps: int = 0
    card_retries: int = 0
    below_threshold: int = 0


def reached_step(steps: list[DunningStep], *, due: date, today: date) -> DunningStep | None:
    """The latest step an invoice due on `due` has reached by `today` (steps sorted by days)."""
    reached = [step for step in steps if due + timedelta(days=step.days_past_due) <= today]
    return reached[-1] if reached else None


def _overdue(customer_id: Any, currency: str) -> list[Invoice]:
    return list(
        Invoice.objects.filter(
            customer_id=customer_id, currency=currency, status=InvoiceStatus.FINALIZED, payment_overdue=True
        )
        .exclude(payment_status=InvoicePaymentStatus.SUCCEEDED)
        .order_by("payment_due_date", "pk")
    )


def _customer_day(
    *, campaign: DunningCampaign, steps: list[DunningStep], customer_id: Any, currency: str, today: date, actor: str
) -> DunningSummary:
    """One customer and currency, in one transaction under the customer's row lock (two runs
    queue here; the attempts' unique constraint backs it)."""
    summary = DunningSummary()
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        invoices = _overdue(customer_id, currency)
        if not invoices:
            return summary
        thresholds = {threshold.currency: threshold.amount for threshold in campaign.thresholds.all()}
        if thresholds:
            balance = sum((invoice.total_due_amount for invoice in invoices), start=Decimal(0))
            if currency not in thresholds or balance < thresholds[currency]:
                summary.below_threshold = 1
                return summary
        done = set(
            DunningAttempt.objects.filter(invoice__in=invoices, step__in=steps).values_list("step_id", "invoice_id")
        )
        new_steps: dict[Any, DunningStep] = {}
        skipped: list[DunningAttempt] = []
        for invoice in invoices:
            step = reached_step(steps, due=invoice.payment_due_date, today=today)
            if step is None or (step.pk, invoice.pk) in done:
                continue
            new_steps[invoice.pk] = step
            skipped += [
                DunningAttempt(step=earlier, invoice=invoice, skipped=True)
                for earlier in steps
                if earlier.days_past_due < step.days_past_due and (earlier.pk, invoice.pk) not in done
            ]
        if not new_steps:
            return summary
        latest = max(new_steps.values(), key=lambda step: step.days_past_due)
        request = payment_request_create(
            external_customer_id=customer.external_id,
            invoice_ids=[invoice.pk for invoice in invoices],
            actor=actor,
            dunning_step=latest,
            bcc=list(campaign.bcc_emails or []),
        )
        DunningAttempt.objects.bulk_create(
            [
                DunningAttempt(step=step, invoice_id=invoice_id, payment_request=request)
                for invoice_id, step in new_steps.items()
            ]
            + skipped
        )
        InvoiceEvent.objects.bulk_create(
            [
                InvoiceEvent(
                    invoice_id=invoice_id,
                    kind="dunning_step",
                    actor=actor,
                    payload={
                        "campaign": campaign.code,
                        "days_past_due": step.days_past_due,
                        "retry_card": step.retry_card,
                        "payment_request_id": str(request.pk),
                        "skipped_days": sorted(a.step.days_past_due for a in skipped if a.invoice_id == invoice_id),
                    },
                )
                for invoice_id, step in new_steps.items()
            ]
        )
        summary.customers, summary.payment_requests = 1, 1
        summary.steps, summary.skipped_steps = len(new_steps), len(skipped)
        for invoice_id, step in new_steps.items():
            if step.retry_card and customer.payment_provider == "stripe":
                summary.card_retries += _retry_card(invoice_id)
    return summary


def _retry_card(invoice_id: Any) -> int:
    from .services import invoice_payment_retry

    try:
        with transaction.atomic():
            invoice_payment_retry(invoice_id=invoice_id, trigger=PaymentTrigger.DUNNING)
    except PaymentError as error:  # an attempt in flight, nothing due: the e-mail still goes
        logger.info("dunning: no card retry for invoice %s (%s)", invoice_id, error.code)
        return 0
    return 1


def dunning_run(*, today: date, actor: str = "system:dunning") -> DunningSummary:
    """Today's steps of the default campaign (idempotent: a rerun the same day does nothing)."""
    total = DunningSummary()
    campaign = DunningCampaign.objects.filter(is_default=True).prefetch_related("thresholds").first()
    if campaign is None:
        return total
    steps = list(campaign.steps.order_by("days_past_due"))
    if not steps:
        return total
    candidates = (
        Invoice.objects.filter(
            status=InvoiceStatus.FINALIZED,
            payment_overdue=True,
            payment_due_date__lte=today - timedelta(days=steps[0].days_past_due),
            customer__deleted_at__isnull=True,
            customer__exclude_from_dunning_campaign=False,
        )
        .exclude(payment_status=InvoicePaymentStatus.SUCCEEDED)
        .values_list("customer_id", "currency")
        .distinct()
    )
    groups: dict[tuple[Any, str], None] = defaultdict(lambda: None)
    for customer_id, currency in candidates:
        groups[(customer_id, currency)] = None
    for customer_id, currency in sorted(groups, key=lambda key: (str(key[0]), key[1])):
        try:
            day = _customer_day(
                campaign=campaign, steps=steps, customer_id=customer_id, currency=currency, today=today, actor=actor
            )
        except IntegrityError:  # another run did this customer's steps at the same moment
            logger.info("dunning: customer %s %s done by a concurrent run", customer_id, currency)
            continue
        for field in ("customers", "payment_requests", "steps", "skipped_steps", "card_retries", "below_threshold"):
            setattr(total, field, getattr(total, field) + getattr(day, field))
    return total
