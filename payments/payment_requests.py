"""Payment requests (Lago's): one request to a customer for several of its overdue invoices,
e-mailed with a pay link, followed until every invoice is paid.

- payment_request_create: Lago's checks (app/services/payment_requests/create_service.rb), the
  rows, the invoices' timelines, the payment_request.created webhook and the e-mail, in one
  transaction; the e-mail leaves after commit from invoicing's outbox.
- payment_requests_follow_invoice: an invoice was paid; requests whose invoices are all paid
  succeed (payment_request.payment_status_updated).
- payment_requests_payment_failed: a card retry a dunning step started failed
  (payment_request.payment_failure, and the status update).
- payment_request_pay_link: where the e-mail's "Pay now" points (see invoicing.mail.links).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import transaction

from billing_project.errors import NotAllowedError, NotFoundError
from billing_project.money import format_money
from customers.models import Customer, Organization
from invoicing.documents import format_date
from invoicing.locks import lock_invoice
from invoicing.mail.documents import DocumentMessage, render_message
from invoicing.mail.links import invoice_pay_link
from invoicing.mail.models import EmailReason
from invoicing.mail.services import addresses, document_email_enqueue, is_valid_address
from invoicing.models import Invoice, InvoiceEvent, InvoiceStatus
from invoicing.models import PaymentStatus as InvoicePaymentStatus

from .errors import PaymentError
from .models import DunningStep, Payment, PaymentRequest, PaymentRequestInvoice, PaymentRequestStatus
from .signals import (
    payment_request_created_in_tx,
    payment_request_payment_failed_in_tx,
    payment_request_payment_status_changed_in_tx,
)

RequestPayLinkBuilder = Callable[[PaymentRequest, str | None], str | None]


def _no_request_link(payment_request: PaymentRequest, base_url: str | None) -> str | None:
    """Until the portal pays a whole request at once, the e-mail links each invoice instead
    (invoice_pay_link)."""
    return None


_request_pay_link: RequestPayLinkBuilder = _no_request_link


def payment_request_pay_link_register(builder: RequestPayLinkBuilder) -> None:
    """The portal's payment URL for a whole request (one checkout for its amount)."""
    global _request_pay_link
    _request_pay_link = builder


def payment_request_pay_link(*, payment_request: PaymentRequest, base_url: str | None = None) -> str | None:
    return _request_pay_link(payment_request, base_url)


def _timeline(invoice_ids: Sequence[Any], kind: str, actor: str, payload: dict[str, Any]) -> None:
    InvoiceEvent.objects.bulk_create(
        [InvoiceEvent(invoice_id=pk, kind=kind, actor=actor, payload=payload) for pk in invoice_ids]
    )


def payment_request_create(
    *,
    external_customer_id: str,
    invoice_ids: Sequence[Any],
    email: str | None = None,
    actor: str,
    dunning_step: DunningStep | None = None,
    bcc: Sequence[str] = (),
) -> PaymentRequest:
    """One request for the customer's overdue invoices `invoice_ids`: 404 `customer_not_found`,
    404 `invoice_not_found` (none of the ids is the customer's), 405 `invoices_not_overdue`, 405
    `invoices_have_different_currencies`, 422 for an invalid e-mail; as Lago."""
    customer = Customer.live.filter(external_id=external_customer_id).first()
    if customer is None:
        raise NotFoundError("customer")
    recipient = (email if email is not None else customer.email) or ""
    if len(recipient) > PaymentRequest._meta.get_field("email").max_length or any(  # type: ignore[operator]
        not is_valid_address(address) for address in addresses(recipient)
    ):
        raise PaymentError("invalid_email_format", field="email")
    with transaction.atomic():
        ids = sorted(
            {
                str(pk)
                for pk in Invoice.objects.filter(customer=customer, pk__in=list(invoice_ids)).values_list(
                    "pk", flat=True
                )
            }
        )
        if not ids:
            raise NotFoundError("invoice")
        # Locked in a fixed order (payments lock an invoice before its payments, one at a time).
        invoices = [lock_invoice(pk) for pk in ids]
        if any(not invoice.payment_overdue or invoice.status != InvoiceStatus.FINALIZED for invoice in invoices):
            raise NotAllowedError("invoices_not_overdue")
        if len({invoice.currency for invoice in invoices}) > 1:
            raise NotAllowedError("invoices_have_different_currencies")
        amount = sum((invoice.total_due_amount for invoice in invoices), start=Decimal(0))
        request = PaymentRequest.objects.create(
            customer=customer,
            email=recipient,
            amount=amount,
            currency=invoices[0].currency,
            dunning_step=dunning_step,
        )
        PaymentRequestInvoice.objects.bulk_create(
            [PaymentRequestInvoice(payment_request=request, invoice=invoice) for invoice in invoices]
        )
        invoice_pks = [invoice.pk for invoice in invoices]
        _timeline(
            invoice_pks,
            "payment_request_created",
            actor,
            {
                "payment_request_id": str(request.pk),
                "amount": str(amount),
                "currency": request.currency,
                "email": recipient,
                **({"dunning_step": str(dunning_step)} if dunning_step is not None else {}),
            },
        )
        payment_request_created_in_tx.send(sender=PaymentRequest, payment_request_id=request.pk)
        # Lago's PaymentRequestMailer: sent when the request and the organization have an e-mail.
        recipients = addresses(recipient)
        if recipients and Organization.current().email:
            document_email_enqueue(
                document_type="payment_request",
                document_id=request.pk,
                invoice_id=None,
                to=recipients,
                bcc=list(bcc),
                reason=EmailReason.PAYMENT_REQUEST,
                actor=actor,
                timeline_invoice_ids=invoice_pks,
            )
    return request


def _status_set(request: PaymentRequest, status: str) -> None:
    request.payment_status = status
    request.save(update_fields=["payment_status", "updated_at"])
    payment_request_payment_status_changed_in_tx.send(sender=PaymentRequest, payment_request_id=request.pk)


def payment_requests_follow_invoice(*, invoice: Invoice) -> None:
    """Inside the payment's transaction (the invoice locked): requests still open on this invoice
    succeed once every invoice they name is paid."""
    if invoice.payment_status != InvoicePaymentStatus.SUCCEEDED:
        return
    open_requests = PaymentRequest.objects.select_for_update().filter(
        applied_invoices__invoice=invoice,
        payment_status__in=[PaymentRequestStatus.PENDING, PaymentRequestStatus.FAILED],
    )
    for request in open_requests:
        unpaid = (
            Invoice.objects.filter(pk__in=request.applied_invoices.values("invoice_id"))
            .exclude(pk=invoice.pk)
            .exclude(payment_status=InvoicePaymentStatus.SUCCEEDED)
            .exists()
        )
        if not unpaid:
            _status_set(request, PaymentRequestStatus.SUCCEEDED)


def payments_request_of(payment: Payment) -> PaymentRequest | None:
    """The latest open request a dunning retry of this payment's invoice was made for."""
    return (
        PaymentRequest.objects.select_for_update()
        .filter(applied_invoices__invoice_id=payment.invoice_id, dunning_step__isnull=False)
        .exclude(payment_status=PaymentRequestStatus.SUCCEEDED)
        .order_by("-created_at")
        .first()
    )


def payment_requests_payment_failed(*, payment: Payment) -> None:
    """Inside the payment's transaction: a card retry started by a dunning step failed."""
    request = payments_request_of(payment)
    if request is None:
        return
    payment_request_payment_failed_in_tx.send(
        sender=PaymentRequest, payment_request_id=request.pk, payment_id=payment.pk
    )
    if request.payment_status != PaymentRequestStatus.FAILED:
        _status_set(request, PaymentRequestStatus.FAILED)


def payment_request_message(payment_request_id: UUID, base_url: str | None = None) -> DocumentMessage | None:
    """The request's e-mail: each invoice with what it still owes and its pay link."""
    request = PaymentRequest.objects.filter(pk=payment_request_id).first()
    if request is None:
        return None
    invoices = list(request.invoices.order_by("issuing_date", "number"))
    items = [
        {
            "label": invoice.number,
            "detail": format_date(invoice.payment_due_date),
            "amount": format_money(invoice.total_due_amount, invoice.currency),
            "link": invoice_pay_link(invoice=invoice, base_url=base_url),
        }
        for invoice in invoices
    ]
    link = payment_request_pay_link(payment_request=request, base_url=base_url)
    subject, text, html = render_message(
        organization=Organization.current(),
        subject_key="payment_request_subject",
        intro_key="payment_request_intro",
        values={"amount": format_money(request.amount, request.currency)},
        rows=[("amount_due", format_money(request.amount, request.currency))],
        items=items,
        buttons=[("pay", link)] if link else [],
        attached=False,
    )
    return DocumentMessage(subject=subject, text=text, html=html, invoice_ids=[invoice.pk for invoice in invoices])
