"""The customer portal's pages: server-rendered HTML, forms without JavaScript, CSRF-protected.
The token in the path is the credential (portal.services.portal_customer); every id in a path is
looked up among that customer's own rows only, so another customer's id answers 404."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from customers.errors import CustomersValidationError
from customers.models import Customer, Organization
from invoicing import pdf
from invoicing.models import CreditNote, Invoice
from payments.checkout import invoice_checkout_link
from payments.errors import PaymentError

from . import selectors, services, tokens

logger = logging.getLogger(__name__)

FIELD_LABELS = {
    "legal_name": "Legal name",
    "tax_identification_number": "Tax identification number",
    "email": "Billing e-mail (several separated by commas)",
    "address_line1": "Address line 1",
    "address_line2": "Address line 2",
    "zipcode": "Postal code",
    "city": "City",
    "state": "State or region",
    "country": "Country (ISO code, e.g. FR)",
}
# Lago's validation codes, in words a customer reads.
ERROR_WORDS = {
    "invalid_email_format": "Enter valid e-mail addresses, separated by commas.",
    "country_code_invalid": "Enter a two-letter ISO country code, such as FR or US.",
    "value_is_invalid": "This value is too long or not valid.",
    "value_is_mandatory": "This field is required.",
}
PAY_ERRORS = {
    "invalid_invoice_status_or_payment_status": "This invoice has nothing left to pay.",
    "payment_provider_unavailable": "The payment service cannot be reached; please try again in a few minutes.",
}


def _headers(response: HttpResponse) -> HttpResponse:
    # The page names a customer's billing details: never cached, never framed, and its address
    # (the token) never sent as a referrer to another site. `same-origin`, not `no-referrer`:
    # with no-referrer browsers post forms with `Origin: null`, which CSRF checking refuses.
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _refused(request: HttpRequest, error: tokens.PortalLinkInvalid) -> HttpResponse:
    expired = isinstance(error, tokens.PortalLinkExpired)
    context = {
        "title": "This link has expired" if expired else "This link is not valid",
        "message": (
            "Portal links stay valid for a limited time. Ask for a new link to see your billing."
            if expired
            else "The link may be incomplete, revoked or replaced by a newer one. Ask for a new link."
        ),
    }
    return _headers(render(request, "portal/refused.html", context, status=403))


def _customer_or_refusal(request: HttpRequest, token: str) -> Customer | HttpResponse:
    try:
        return services.portal_customer(token)
    except tokens.PortalLinkInvalid as error:
        return _refused(request, error)


def _home_url(token: str, **query: str) -> str:
    url = reverse("portal:home", args=[token])
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


def _page(
    request: HttpRequest,
    customer: Customer,
    token: str,
    *,
    status: int = 200,
    form_values: dict[str, str] | None = None,
    form_errors: dict[str, list[str]] | None = None,
    notice: str = "",
    alert: str = "",
) -> HttpResponse:
    values = form_values or {field: getattr(customer, field) or "" for field in services.EDITABLE_FIELDS}
    errors = form_errors or {}
    fields = [
        {
            "name": field,
            "label": FIELD_LABELS[field],
            "value": values.get(field, ""),
            "errors": [ERROR_WORDS.get(code, code) for code in errors.get(field, [])],
            "type": "email" if field == "email" else "text",
        }
        for field in services.EDITABLE_FIELDS
    ]
    messages = {"updated": "Your billing details were saved.", "paid": "Thank you: your payment is being confirmed."}
    context: dict[str, Any] = {
        "token": token,
        "organization": Organization.current(),
        "customer": customer,
        "invoices": selectors.customer_invoices(customer),
        "credit_notes": selectors.customer_credit_notes(customer),
        "usage": selectors.customer_current_usage(customer),
        "wallets": selectors.customer_wallets(customer),
        "fields": fields,
        "form_has_errors": bool(errors),
        "notice": notice or messages.get(request.GET.get("done", ""), ""),
        "alert": alert,
    }
    return _headers(render(request, "portal/home.html", context, status=status))


@require_GET
def home(request: HttpRequest, token: str) -> HttpResponse:
    customer = _customer_or_refusal(request, token)
    if isinstance(customer, HttpResponse):
        return customer
    return _page(request, customer, token)


@require_POST
def billing_details(request: HttpRequest, token: str) -> HttpResponse:
    customer = _customer_or_refusal(request, token)
    if isinstance(customer, HttpResponse):
        return customer
    submitted = {field: request.POST.get(field, "") for field in services.EDITABLE_FIELDS}
    try:
        services.portal_billing_details_update(customer=customer, changes=submitted)
    except CustomersValidationError as error:
        details = {k: [str(code) for code in v] for k, v in (error.details or {}).items() if k in submitted}
        return _page(
            request,
            customer,
            token,
            status=422,
            form_values=submitted,
            form_errors=details or {"email": ["value_is_invalid"]},
            alert="Some billing details need correcting; see the messages by each field.",
        )
    return HttpResponseRedirect(_home_url(token, done="updated") + "#billing-details", status=303)


def _own_invoice(customer: Customer, invoice_id: str) -> Invoice:
    try:
        parsed = uuid.UUID(invoice_id)
    except ValueError:
        raise Http404("no such invoice") from None
    invoice = (
        Invoice.objects.filter(pk=parsed, customer=customer, status__in=selectors.SHOWN_INVOICE_STATUSES)
        .select_related("customer")
        .first()
    )
    if invoice is None:
        raise Http404("no such invoice")
    return invoice


@require_POST
def pay(request: HttpRequest, token: str, invoice_id: str) -> HttpResponse:
    """Pay now: off to Stripe Checkout. Nothing is marked paid here: Stripe's webhook settles it."""
    customer = _customer_or_refusal(request, token)
    if isinstance(customer, HttpResponse):
        return customer
    invoice = _own_invoice(customer, invoice_id)
    if not selectors.can_pay_online(customer):
        return _page(request, customer, token, status=422, alert="Online payment is not available for your account.")
    back = request.build_absolute_uri(_home_url(token, done="paid"))
    try:
        link = invoice_checkout_link(invoice=invoice, success_url=back)
    except PaymentError as error:
        words = PAY_ERRORS.get(error.code, "This invoice cannot be paid online right now.")
        status = 503 if error.code == "payment_provider_unavailable" else 422
        return _page(request, customer, token, status=status, alert=words)
    return HttpResponseRedirect(link.url, status=303)


@require_http_methods(["GET", "HEAD"])
def invoice_pdf(request: HttpRequest, token: str, invoice_id: str) -> HttpResponse:
    """The invoice's PDF: rendered if it has none yet, then the signed, expiring download link."""
    customer = _customer_or_refusal(request, token)
    if isinstance(customer, HttpResponse):
        return customer
    invoice = _own_invoice(customer, invoice_id)
    if not invoice.file:
        pdf.invoice_pdf_render(invoice=invoice, actor=f"portal:{customer.external_id}")
    return HttpResponseRedirect(pdf.signed_file_url(obj=invoice, base_url=request.build_absolute_uri("/")))


@require_http_methods(["GET", "HEAD"])
def credit_note_pdf(request: HttpRequest, token: str, credit_note_id: str) -> HttpResponse:
    customer = _customer_or_refusal(request, token)
    if isinstance(customer, HttpResponse):
        return customer
    try:
        parsed = uuid.UUID(credit_note_id)
    except ValueError:
        raise Http404("no such credit note") from None
    note = CreditNote.objects.filter(pk=parsed, customer=customer).first()
    if note is None:
        raise Http404("no such credit note")
    if not note.file:
        pdf.credit_note_pdf_render(credit_note=note, actor=f"portal:{customer.external_id}")
    return HttpResponseRedirect(pdf.signed_file_url(obj=note, base_url=request.build_absolute_uri("/")))
