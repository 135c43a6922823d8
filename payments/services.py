"""Every change to money collected: Stripe attempts, their outcomes, manual payments, retries and
the overdue flag. Each service is one transaction; provider calls happen outside transactions.

Locking order, always: the invoice row first, then its payment rows. Invoice amounts are never
changed here; only `total_paid_amount`, `payment_status` and `payment_overdue`, recomputed from
the payments ledger under the invoice's lock.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Prefetch, Q, Sum
from django.utils import timezone

from billing_project.after_commit import delay_after_commit
from billing_project.money import from_cents, round_amount
from customers.models import Customer, PaymentProvider
from invoicing.locks import lock_invoice
from invoicing.models import PAYABLE_STATUSES, Invoice, InvoiceStatus
from invoicing.models import PaymentStatus as InvoicePaymentStatus
from invoicing.signals import invoice_payment_status_changed_in_tx, invoices_payment_overdue_in_tx
from invoicing.wallets.consumption import invoice_paid_settle_credits, invoice_payment_failed_mark_credits

from .errors import PaymentError
from .models import IN_FLIGHT_STATUSES, Payment, PaymentProviderName, PaymentStatus, PaymentTrigger
from .payment_requests import payment_requests_follow_invoice, payment_requests_payment_failed
from .providers import ChargeOutcome, ProviderRejected, ProviderUnavailable
from .providers import manual as manual_provider
from .providers import stripe as stripe_provider
from .receipts import payment_receipt_issue
from .signals import invoice_payment_unprovided_in_tx, payment_failed_in_tx, payment_succeeded_in_tx

logger = logging.getLogger(__name__)

# A pending Stripe attempt untouched this long is sent again (same idempotency key).
STALE_PENDING_AFTER = timedelta(minutes=10)
# A finalized invoice's first collection is the task its finalization sends. One this old with no
# Stripe attempt lost its task (broker down, worker killed): the sweep collects it. Older than
# COLLECT_MISSED_WITHIN it is left alone (a customer linked to Stripe later is not charged for
# its past invoices, as Lago).
COLLECT_MISSED_AFTER = timedelta(minutes=10)
COLLECT_MISSED_WITHIN = timedelta(days=7)
# Stripe forgets idempotency keys after 24 hours: past this, a pending attempt is not re-sent but
# closed as failed (a late webhook for it can still turn it into a success).
ABANDON_PENDING_AFTER = timedelta(hours=23)


# --- The invoice's payment state (invoices are locked with invoicing.locks) ----------------------


def _invoice_payment_state_refresh(invoice: Invoice) -> None:
    """Recompute the invoice's payment fields from its payments. Caller holds the invoice lock."""
    paid = invoice.payments.filter(status=PaymentStatus.SUCCEEDED).aggregate(total=Sum("amount"))["total"]
    invoice.total_paid_amount = paid or Decimal(0)
    latest_attempt = (
        invoice.payments.filter(provider=PaymentProviderName.STRIPE).order_by("-attempt").only("status").first()
    )
    excess = invoice.total_paid_amount - invoice.total_amount
    if excess >= stripe_provider.chargeable_step(invoice.currency):
        # Two attempts that both took money (a late success of an attempt given up on): the
        # ledger keeps the truth; someone must refund. (Less than a step is the rounding up of a
        # three-decimal currency, see providers.stripe.stripe_amount.)
        logger.warning(
            "invoice %s collected %s for a total of %s %s",
            invoice.pk,
            round_amount(invoice.total_paid_amount, invoice.currency),
            round_amount(invoice.total_amount, invoice.currency),
            invoice.currency,
        )
    status_before = invoice.payment_status
    if invoice.status in PAYABLE_STATUSES and invoice.total_due_amount <= 0:
        invoice.payment_status = InvoicePaymentStatus.SUCCEEDED
        invoice.payment_overdue = False
    elif latest_attempt is not None and latest_attempt.status == PaymentStatus.FAILED:
        invoice.payment_status = InvoicePaymentStatus.FAILED
    else:
        invoice.payment_status = InvoicePaymentStatus.PENDING
    invoice.save(update_fields=["total_paid_amount", "payment_status", "payment_overdue", "updated_at"])
    if invoice.payment_status != status_before:
        # Inside the transaction: the webhook outbox row commits with the new status (a change only).
        invoice_payment_status_changed_in_tx.send(sender=Invoice, invoice_id=invoice.pk)
    if invoice.payment_status == InvoicePaymentStatus.SUCCEEDED:
        # A paid credit invoice settles its purchased wallet credits (a no-op for other invoices).
        invoice_paid_settle_credits(invoice=invoice)
        if status_before != invoice.payment_status:
            # Payment requests whose invoices are now all paid succeed.
            payment_requests_follow_invoice(invoice=invoice)
    elif invoice.payment_status == InvoicePaymentStatus.FAILED and status_before != InvoicePaymentStatus.FAILED:
        invoice_payment_failed_mark_credits(invoice=invoice)


# --- Stripe customers and payment methods -------------------------------------------------------


def stripe_customer_sync(*, customer_id: Any, create: bool = True) -> Customer | None:
    """Give a `stripe` customer its Stripe customer (created, or linked by provider_customer_id)
    and mirror it in dj-stripe. With `create` false, only an existing link is synced."""
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None or customer.payment_provider != PaymentProvider.STRIPE:
        return customer
    if not customer.provider_customer_id and not create:
        return customer
    if not stripe_provider.is_configured():
        logger.error("Stripe is not configured (no secret key): customer %s not synced", customer.external_id)
        return customer
    stripe_customer_id = stripe_provider.customer_ensure(customer=customer)
    if customer.provider_customer_id != stripe_customer_id:
        # Only fill an empty link: never overwrite an id someone set meanwhile. A queryset update,
        # so the customers app's customer_saved is not sent again (no sync loop).
        Customer.objects.filter(pk=customer.pk, provider_customer_id="").update(provider_customer_id=stripe_customer_id)
        customer.refresh_from_db(fields=["provider_customer_id"])
    return customer


def _stripe_customer_id_for(customer: Customer) -> str:
    if customer.payment_provider != PaymentProvider.STRIPE:
        raise PaymentError("invalid_payment_provider", field="payment_provider")
    if not stripe_provider.is_configured():
        raise PaymentError("payment_provider_not_configured", http_status=422)
    synced = stripe_customer_sync(customer_id=customer.pk)
    assert synced is not None
    return synced.provider_customer_id


def customer_payment_method_attach(
    *, customer: Customer, provider_method_id: str, set_as_default: bool = True
) -> dict[str, Any]:
    """Attach a Stripe payment method to the customer (creating its Stripe customer if needed)."""
    stripe_customer_id = _stripe_customer_id_for(customer)
    try:
        return stripe_provider.payment_method_attach(
            stripe_customer_id=stripe_customer_id, payment_method_id=provider_method_id, set_as_default=set_as_default
        )
    except ProviderRejected as error:
        raise PaymentError(error.code, field="provider_method_id", message=error.message) from error


def customer_payment_method_set_default(*, customer: Customer, provider_method_id: str) -> None:
    stripe_customer_id = _stripe_customer_id_for(customer)
    try:
        stripe_provider.payment_method_set_default(
            stripe_customer_id=stripe_customer_id, payment_method_id=provider_method_id
        )
    except ProviderRejected as error:
        raise PaymentError(error.code, field="provider_method_id", message=error.message) from error


# --- Stripe attempts ----------------------------------------------------------------------------


def _latest_attempt_number(invoice: Invoice) -> int:
    latest = invoice.payments.filter(provider=PaymentProviderName.STRIPE).order_by("-attempt").first()
    return (latest.attempt or 0) if latest else 0


def invoice_payment_collect(*, invoice_id: Any, trigger: str, after_attempt: int) -> Payment | None:
    """Start Stripe attempt number `after_attempt + 1` for what the invoice still owes, then send it.

    `after_attempt` is the attempt the caller saw last; if another attempt started meanwhile (a
    re-sent signal, two retries racing), this is a no-op. Under the invoice lock nothing is
    started when nothing is due, an attempt already succeeded for the full amount, or another
    attempt is in flight; the database's unique constraints back these checks.
    """
    with transaction.atomic():
        invoice = lock_invoice(invoice_id)
        customer = invoice.customer
        if customer.payment_provider != PaymentProvider.STRIPE:
            return None
        if not stripe_provider.is_configured():
            logger.error("Stripe is not configured (no secret key): invoice %s not collected", invoice.pk)
            return None
        amount_due = invoice.total_due_amount
        if invoice.status not in PAYABLE_STATUSES or amount_due <= 0:
            return None
        attempts = list(invoice.payments.select_for_update().filter(provider=PaymentProviderName.STRIPE))
        if any(payment.status in IN_FLIGHT_STATUSES for payment in attempts):
            return None
        latest = max((payment.attempt or 0 for payment in attempts), default=0)
        if latest != after_attempt:
            return None
        attempt = latest + 1
        minor = stripe_provider.stripe_amount(amount_due, invoice.currency)
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    invoice=invoice,
                    customer=customer,
                    provider=PaymentProviderName.STRIPE,
                    status=PaymentStatus.PENDING,
                    amount=stripe_provider.from_stripe_amount(minor, invoice.currency),
                    currency=invoice.currency,
                    attempt=attempt,
                    trigger=trigger,
                    provider_customer_id=customer.provider_customer_id,
                    idempotency_key=f"tollgate:invoice:{invoice.pk}:attempt:{attempt}",
                )
        except IntegrityError:
            # Another worker started this attempt between our read and our insert.
            logger.info("attempt %s of invoice %s already started elsewhere", attempt, invoice.pk)
            return None
        _invoice_payment_state_refresh(invoice)
    return payment_submit(payment_id=payment.pk)


def payment_submit(*, payment_id: Any) -> Payment:
    """Send a pending Stripe attempt to Stripe (again). Safe to repeat: the idempotency key makes
    Stripe answer a repeat with the PaymentIntent of the first request instead of a new charge."""
    payment = Payment.objects.select_related("invoice__customer").get(pk=payment_id)
    if payment.status != PaymentStatus.PENDING or payment.provider != PaymentProviderName.STRIPE:
        return payment
    invoice = payment.invoice
    customer = invoice.customer
    try:
        outcome = _stripe_charge(payment, customer)
    except ProviderUnavailable as error:
        # Stays pending: the sweep re-sends it with the same key (see payments_sweep_stale).
        logger.warning("Stripe unavailable for payment %s: %s", payment.pk, error)
        Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now())
        return payment
    return payment_apply_outcome(payment_id=payment.pk, outcome=outcome)


def _stripe_charge(payment: Payment, customer: Customer) -> ChargeOutcome:
    try:
        stripe_customer_id = customer.provider_customer_id
        if not stripe_customer_id:
            synced = stripe_customer_sync(customer_id=customer.pk)
            stripe_customer_id = synced.provider_customer_id if synced else ""
        payment_method = (
            stripe_provider.default_payment_method(stripe_customer_id=stripe_customer_id)
            if stripe_customer_id
            else None
        )
    except ProviderRejected as error:
        return ChargeOutcome(PaymentStatus.FAILED, failure_code=error.code, failure_reason=error.message)
    if not payment_method:
        return ChargeOutcome(
            PaymentStatus.FAILED,
            failure_code="no_payment_method",
            failure_reason="The customer has no default payment method in Stripe.",
        )
    if payment.provider_customer_id != stripe_customer_id:
        Payment.objects.filter(pk=payment.pk).update(provider_customer_id=stripe_customer_id)
    invoice = payment.invoice
    return stripe_provider.payment_intent_create(
        amount=stripe_provider.stripe_amount(payment.amount, payment.currency),
        currency=payment.currency,
        stripe_customer_id=stripe_customer_id,
        payment_method_id=payment_method,
        idempotency_key=payment.idempotency_key,
        metadata={
            "invoice_id": str(invoice.pk),
            "invoice_number": invoice.number,
            "attempt": str(payment.attempt),
            "payment_id": str(payment.pk),
        },
    )


def payment_apply_outcome(*, payment_id: Any, outcome: ChargeOutcome) -> Payment:
    """Apply what the provider said about an attempt. Idempotent, and never moves a payment back:
    a second identical outcome changes nothing, a late `failed` after `succeeded` is ignored."""
    with transaction.atomic():
        invoice_id = Payment.objects.values_list("invoice_id", flat=True).get(pk=payment_id)
        invoice = lock_invoice(invoice_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        fields: set[str] = set()
        if outcome.provider_payment_id and not payment.provider_payment_id:
            payment.provider_payment_id = outcome.provider_payment_id
            fields.add("provider_payment_id")
        if outcome.status != payment.status:
            if not payment.can_move_to(outcome.status):
                logger.info("payment %s: ignored %s -> %s", payment.pk, payment.status, outcome.status)
            else:
                payment.status = outcome.status
                fields.add("status")
                if outcome.status == PaymentStatus.SUCCEEDED:
                    payment.paid_at = outcome.paid_at or timezone.now()
                    payment.next_action = None
                    fields |= {"paid_at", "next_action"}
                elif outcome.status == PaymentStatus.FAILED:
                    payment.failure_code = outcome.failure_code[:255]
                    payment.failure_reason = outcome.failure_reason
                    payment.next_action = None
                    fields |= {"failure_code", "failure_reason", "next_action"}
                elif outcome.status == PaymentStatus.REQUIRES_ACTION:
                    payment.next_action = outcome.next_action
                    payment.failure_code = outcome.failure_code[:255]
                    payment.failure_reason = outcome.failure_reason
                    fields |= {"next_action", "failure_code", "failure_reason"}
        if fields:
            payment.save(update_fields=[*sorted(fields), "updated_at"])
            if "status" in fields and payment.status == PaymentStatus.SUCCEEDED:
                payment_succeeded_in_tx.send(sender=Payment, payment_id=payment.pk)
                payment_receipt_issue(payment=payment)
            elif "status" in fields and payment.status == PaymentStatus.FAILED:
                payment_failed_in_tx.send(sender=Payment, payment_id=payment.pk)
                if payment.trigger == PaymentTrigger.DUNNING:
                    payment_requests_payment_failed(payment=payment)
            _invoice_payment_state_refresh(invoice)
    return payment


def _payment_for_intent(payment_intent: dict[str, Any]) -> Payment | None:
    """Our attempt behind a PaymentIntent: by its id, else by the metadata we sent (the webhook
    can arrive before the create call returned and we stored the id)."""
    pi_id = payment_intent.get("id") or ""
    payment = Payment.objects.filter(provider=PaymentProviderName.STRIPE, provider_payment_id=pi_id).first()
    if payment is not None:
        return payment
    metadata = payment_intent.get("metadata") or {}
    candidate = None
    try:
        if metadata.get("payment_id"):
            candidate = Payment.objects.filter(pk=uuid.UUID(str(metadata["payment_id"]))).first()
        elif metadata.get("invoice_id") and metadata.get("attempt"):
            candidate = Payment.objects.filter(
                provider=PaymentProviderName.STRIPE,
                invoice_id=uuid.UUID(str(metadata["invoice_id"])),
                attempt=int(metadata["attempt"]),
            ).first()
    except (ValueError, TypeError):
        return None
    if candidate is None or candidate.provider != PaymentProviderName.STRIPE:
        return None
    if candidate.provider_payment_id and candidate.provider_payment_id != pi_id:
        return None  # the metadata names an attempt that went through another intent
    return candidate


def payment_intent_event_apply(
    *, payment_intent: dict[str, Any], occurred_at: datetime | None = None
) -> Payment | None:
    """A Stripe webhook told us about a PaymentIntent: apply it to our attempt, if it is ours.
    `occurred_at` (the event's time) dates a success."""
    payment = _payment_for_intent(payment_intent)
    if payment is None and (payment_intent.get("metadata") or {}).get("tollgate_checkout") == "invoice":
        # Paid on a Stripe Checkout page (payments.checkout): recorded from this event alone. A
        # wallet top-up's page is an invoice's (its credit invoice): the same path settles it.
        from .checkout import checkout_payment_record

        return checkout_payment_record(payment_intent=payment_intent, occurred_at=occurred_at)
    outcome = stripe_provider.outcome_from_payment_intent(payment_intent)
    if occurred_at is not None:
        outcome = dataclasses.replace(outcome, paid_at=occurred_at)
    if payment is None:
        logger.info("PaymentIntent %s is not a Tollgate attempt: ignored", payment_intent.get("id"))
        return None
    return payment_apply_outcome(payment_id=payment.pk, outcome=outcome)


# --- Retries ------------------------------------------------------------------------------------


def _retryable_status(invoice: Invoice) -> bool:
    return invoice.status in PAYABLE_STATUSES and invoice.total_due_amount > 0


def invoice_payment_retry_check(*, invoice: Invoice) -> Payment | None:
    """Refuse a retry that cannot or must not happen (Lago's codes, HTTP 405); return the attempt
    waiting for the customer (requires_action), which must be canceled before a new one."""
    if not _retryable_status(invoice):
        raise PaymentError("invalid_status", http_status=405)
    if invoice.customer.payment_provider != PaymentProvider.STRIPE:
        raise PaymentError("invalid_payment_provider", http_status=405)
    in_flight = invoice.payments.filter(provider=PaymentProviderName.STRIPE, status__in=IN_FLIGHT_STATUSES).first()
    if in_flight is not None and in_flight.status != PaymentStatus.REQUIRES_ACTION:
        raise PaymentError("payment_processor_is_currently_handling_payment", http_status=405)
    return in_flight


def invoice_payment_retry(*, invoice_id: Any, trigger: str, announce_missing_provider: bool = False) -> None:
    """Retry collecting the invoice now (API or admin): a new attempt, scheduled after commit.

    An attempt still waiting for 3-D Secure is canceled at Stripe first; if it succeeded in the
    meantime, that success is recorded and no new attempt starts. With
    `announce_missing_provider` (the API), a customer without Stripe is not refused: the retry
    fails at once and invoice.payment_failure says why, as Lago; the admin keeps refusing it.
    """
    from .tasks import collect_invoice_payment

    with transaction.atomic():
        invoice = lock_invoice(invoice_id)
        if (
            announce_missing_provider
            and invoice.customer.payment_provider != PaymentProvider.STRIPE
            and _retryable_status(invoice)
        ):
            # Lago (Invoices::Payments::RetryService): no provider to retry with is not an error of
            # the request but of the payment: 200, and invoice.payment_failure announces it.
            invoice_payment_unprovided_in_tx.send(sender=Invoice, invoice_id=invoice.pk)
            return
        waiting = invoice_payment_retry_check(invoice=invoice)
        after_attempt = _latest_attempt_number(invoice)
    if waiting is not None:
        if waiting.provider_payment_id:
            try:
                outcome = stripe_provider.payment_intent_cancel(payment_intent_id=waiting.provider_payment_id)
            except ProviderUnavailable as error:
                raise PaymentError("payment_provider_unavailable", http_status=405, message=str(error)) from error
        else:
            outcome = ChargeOutcome(
                PaymentStatus.FAILED, failure_code="canceled", failure_reason="Replaced by a retry."
            )
        payment_apply_outcome(payment_id=waiting.pk, outcome=outcome)
    invoice_id_str = str(invoice_id)
    delay_after_commit(collect_invoice_payment, invoice_id_str, trigger, after_attempt)


def invoices_collect_missed(*, now: datetime) -> int:
    """Start the first Stripe attempt of finalized invoices whose collection task was lost (the
    fast path is the task invoice_finalized sends). Idempotent: invoice_payment_collect starts
    attempt 1 only while there is none, under the invoice lock. Returns the attempts started."""
    invoice_ids = list(
        Invoice.objects.filter(
            status=InvoiceStatus.FINALIZED,
            payment_status=InvoicePaymentStatus.PENDING,
            customer__payment_provider=PaymentProvider.STRIPE,
            total_amount__gt=F("total_paid_amount"),
            finalized_at__lte=now - COLLECT_MISSED_AFTER,
            finalized_at__gte=now - COLLECT_MISSED_WITHIN,
        )
        .exclude(Exists(Payment.objects.filter(invoice=OuterRef("pk"), provider=PaymentProviderName.STRIPE)))
        .values_list("pk", flat=True)
    )
    started = 0
    for invoice_id in invoice_ids:
        logger.info("invoice %s finalized without a collection attempt: collecting it now", invoice_id)
        if invoice_payment_collect(invoice_id=invoice_id, trigger=PaymentTrigger.FINALIZATION, after_attempt=0):
            started += 1
    return started


def payments_retry_due(*, now: datetime) -> int:
    """Start the automatic retries that are due: attempt k+1 of the schedule runs
    TOLLGATE_PAYMENT_RETRY_DAYS[k] days after the invoice's first failed attempt."""
    from .tasks import collect_invoice_payment

    schedule = list(settings.TOLLGATE_PAYMENT_RETRY_DAYS)
    if not schedule:
        return 0
    invoices = (
        Invoice.objects.filter(
            status=InvoiceStatus.FINALIZED,
            payment_status=InvoicePaymentStatus.FAILED,
            customer__payment_provider=PaymentProvider.STRIPE,
            total_amount__gt=F("total_paid_amount"),
        )
        .exclude(
            pk__in=Payment.objects.filter(provider=PaymentProviderName.STRIPE, status__in=IN_FLIGHT_STATUSES).values(
                "invoice_id"
            )
        )
        .only("id")
        .prefetch_related(
            Prefetch(
                "payments",
                queryset=Payment.objects.filter(provider=PaymentProviderName.STRIPE).only(
                    "invoice_id", "attempt", "status", "trigger", "created_at"
                ),
                to_attr="stripe_attempts",
            )
        )
    )
    started = 0
    for invoice in invoices.iterator(chunk_size=500):
        attempts = invoice.stripe_attempts
        failed = [payment.created_at for payment in attempts if payment.status == PaymentStatus.FAILED]
        if not failed:
            continue
        automatic = sum(1 for payment in attempts if payment.trigger == PaymentTrigger.RETRY_SCHEDULE)
        if automatic >= len(schedule) or now < min(failed) + timedelta(days=schedule[automatic]):
            continue
        latest = max(payment.attempt or 0 for payment in attempts)
        collect_invoice_payment.delay(str(invoice.pk), PaymentTrigger.RETRY_SCHEDULE, latest)
        started += 1
    return started


def payments_sweep_stale(*, now: datetime) -> tuple[int, int]:
    """Re-send Stripe attempts left pending (a worker died, Stripe was down); close as failed the
    ones too old to re-send safely. Returns (re-sent, closed)."""
    stale = Payment.objects.filter(
        provider=PaymentProviderName.STRIPE, status=PaymentStatus.PENDING, updated_at__lt=now - STALE_PENDING_AFTER
    ).values_list("pk", "created_at")
    resent = closed = 0
    for payment_id, created_at in list(stale):
        if created_at < now - ABANDON_PENDING_AFTER:
            outcome = ChargeOutcome(
                PaymentStatus.FAILED,
                failure_code="not_confirmed",
                failure_reason="Stripe never confirmed this attempt; a new attempt may be started.",
            )
            payment_apply_outcome(payment_id=payment_id, outcome=outcome)
            closed += 1
        else:
            payment_submit(payment_id=payment_id)
            resent += 1
    return resent, closed


# --- Manual payments ----------------------------------------------------------------------------


def payment_create_manual(
    *, invoice_id: Any, amount_cents: int, reference: str, paid_at: datetime | None = None
) -> Payment:
    """Record money received outside Tollgate. Part of what is due is fine; more is refused
    (`amount_cents: greater_than`, as Lago); the invoice is `succeeded` once nothing is due."""
    if not reference:
        raise PaymentError("value_is_mandatory", field="reference")
    if len(reference) > manual_provider.REFERENCE_MAX_LENGTH:
        raise PaymentError("value_is_invalid", field="reference")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise PaymentError("value_is_invalid", field="amount_cents")
    with transaction.atomic():
        invoice = lock_invoice(invoice_id)
        if invoice.status not in PAYABLE_STATUSES:
            raise PaymentError("invalid_status", field="invoice_id")
        amount = from_cents(amount_cents, invoice.currency)
        if manual_provider.exceeds_amount_due(amount=amount, amount_due=invoice.total_due_amount):
            raise PaymentError("greater_than", field="amount_cents")
        payment = Payment.objects.create(
            invoice=invoice,
            customer_id=invoice.customer_id,
            provider=PaymentProviderName.MANUAL,
            status=PaymentStatus.SUCCEEDED,
            amount=amount,
            currency=invoice.currency,
            trigger=PaymentTrigger.MANUAL,
            reference=reference,
            paid_at=paid_at or timezone.now(),
        )
        payment_succeeded_in_tx.send(sender=Payment, payment_id=payment.pk)
        payment_receipt_issue(payment=payment, actor="system:manual_payment")
        _invoice_payment_state_refresh(invoice)
    return payment


# --- Overdue ------------------------------------------------------------------------------------


def invoices_overdue_refresh(*, today: date) -> tuple[int, int]:
    """Flag finalized invoices past their due date with something still due; clear the flag on
    the ones that no longer qualify (paid, voided). Returns (flagged, cleared).

    Set-based: PostgreSQL re-checks each row's condition after waiting for a concurrent payment's
    lock (the flagging's SELECT FOR UPDATE, the clearing's UPDATE), so a payment that lands
    meanwhile is never flagged overdue. The flagged invoices are announced (webhooks) in the
    flagging's transaction.
    """
    now = timezone.now()
    # An invoice whose disputed payment was lost is never overdue again (Lago's overdue index).
    overdue = Q(
        status=InvoiceStatus.FINALIZED,
        payment_due_date__lt=today,
        total_amount__gt=F("total_paid_amount"),
        payment_dispute_lost_at__isnull=True,
    ) & ~Q(payment_status=InvoicePaymentStatus.SUCCEEDED)
    with transaction.atomic():
        # The rows to flag, locked (so PostgreSQL has re-checked the condition of any a payment
        # holds), then flagged and announced in one transaction: the webhook outbox rows commit
        # with the flag.
        flagged_ids = list(
            Invoice.objects.select_for_update().filter(overdue, payment_overdue=False).values_list("pk", flat=True)
        )
        flagged = Invoice.objects.filter(pk__in=flagged_ids).update(payment_overdue=True, updated_at=now)
        if flagged_ids:
            invoices_payment_overdue_in_tx.send(sender=Invoice, invoice_ids=flagged_ids)
    cleared = (
        Invoice.objects.filter(payment_overdue=True).exclude(overdue).update(payment_overdue=False, updated_at=now)
    )
    return flagged, cleared


# --- Stripe webhook endpoint --------------------------------------------------------------------


def stripe_webhook_endpoint_register(*, base_url: str, secret: str) -> Any:
    """Record a webhook endpoint whose signing secret is already known (`stripe listen`, an
    endpoint created in the Stripe dashboard, localstripe): dj-stripe verifies each delivery to
    `<base_url>/stripe/webhook/<uuid>/` against it. Idempotent per secret.

    (dj-stripe's own admin creates endpoints in Stripe itself, when Tollgate has a public URL.)
    """
    from django.urls import reverse
    from djstripe.models import APIKey, WebhookEndpoint
    from djstripe.settings import djstripe_settings

    from .receivers import HANDLED_STRIPE_EVENTS, HANDLED_STRIPE_REFUND_EVENTS

    if not secret:
        raise PaymentError("value_is_mandatory", field="secret")
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(secret=secret).first()
        endpoint_uuid = endpoint.djstripe_uuid if endpoint else uuid.uuid4()
        path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
        api_key = APIKey.objects.filter(secret=stripe_provider.secret_key()).first()
        fields = {
            "url": base_url.rstrip("/") + path,
            "secret": secret,
            "enabled_events": [*HANDLED_STRIPE_EVENTS, *HANDLED_STRIPE_REFUND_EVENTS],
            "status": "enabled",
            "api_version": djstripe_settings.STRIPE_API_VERSION,
            "livemode": bool(settings.STRIPE_LIVE_MODE),
            "djstripe_owner_account": api_key.djstripe_owner_account if api_key else None,
        }
        if endpoint is None:
            endpoint = WebhookEndpoint.objects.create(
                id=f"we_tollgate_{endpoint_uuid.hex}", djstripe_uuid=endpoint_uuid, **fields
            )
        else:
            for name, value in fields.items():
                setattr(endpoint, name, value)
            endpoint.save()
    return endpoint
