"""The finance console's pages that read or change more than one app: the dashboard (the admin
index), receivables aging with its CSV, and "Record payment" on an invoice.

payments is the rightmost billing app, so these pages may read customers, invoicing and
payments (ARCHITECTURE: the one-way street); each page checks its permission on the server.
"""

from __future__ import annotations

import csv
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from billing_project import svg_chart
from billing_project.local_time import format_instant
from billing_project.money import decimal_places, format_money, to_cents
from customers.models import Customer, Organization
from invoicing import analytics
from invoicing.models import PAYABLE_STATUSES, Invoice, InvoiceEvent
from invoicing.usage import customer_usage
from plans.models import SubscriptionStatus

from . import analytics as collected
from . import services
from .models import PaymentTrigger
from .providers import ProviderUnavailable
from .statement import statement_view

# The dashboard and aging sum invoices and payments: both are needed (Support sees invoices only).
VIEW_PERMISSIONS = ("invoicing.view_invoice", "payments.view_payment")
RECORD_PAYMENT_PERMISSION = "payments.add_payment"


def _require(request: HttpRequest, *permissions: str) -> None:
    if not request.user.has_perms(permissions):
        raise PermissionDenied


# --- Dashboard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    label: str
    text: str
    url: str


def _list_url(name: str, **params: Any) -> str:
    return f"{reverse(name)}?{urlencode(params)}"


def _invoices(**params: Any) -> str:
    return _list_url("admin:invoicing_invoice_changelist", **params)


def _month_name(month: date) -> str:
    return f"{month:%b %Y}"


def _period(code: str, first: date, end: date) -> dict[str, str]:
    """The invoice list's filter for one currency's finalized invoices issued in [first, end)."""
    return {
        "status__exact": "finalized",
        "currency__exact": code,
        "issuing_date__gte": first.isoformat(),
        "issuing_date__lt": end.isoformat(),
    }


def dashboard_context(request: HttpRequest) -> dict[str, Any] | None:
    """Per currency: Outstanding, Overdue, Invoiced this month and last month, Collected this
    month, MRR, drafts awaiting finalization and failed payments; each a link to the list it
    sums. None for a user who may not see invoices."""
    if not request.user.has_perms(VIEW_PERMISSIONS):
        return None
    organization = Organization.current()
    tz_name = organization.timezone or "UTC"
    now = timezone.now()
    today = now.astimezone(zoneinfo.ZoneInfo(tz_name)).date()
    this_month = analytics.month_start(today)
    next_month, last_month = analytics.add_months(this_month, 1), analytics.add_months(this_month, -1)
    first_chart_month = analytics.add_months(this_month, -11)

    outstanding, overdue = analytics.outstanding_and_overdue_by_currency()
    invoiced = analytics.invoiced_by_month(first=first_chart_month, end=next_month)
    paid = collected.collected_by_month(first=first_chart_month, end=next_month, tz_name=tz_name)
    recurring = {(f.month, f.currency): f.amount for f in analytics.mrr(months=12, today=today)}
    drafts = analytics.drafts_by_currency()
    failed = collected.failed_payments_by_currency()

    codes = sorted(
        set(outstanding)
        | set(drafts)
        | set(failed)
        | {code for _, code in invoiced}
        | {code for _, code in paid}
        | {code for _, code in recurring}
    )
    zero = Decimal(0)
    months = [analytics.add_months(first_chart_month, index) for index in range(12)]
    currencies = []
    for code in codes:
        paid_params = {
            "status__exact": "succeeded",
            "currency": code,
            "paid_at__gte": collected.local_midnight(this_month, tz_name).isoformat(),
            "paid_at__lt": collected.local_midnight(next_month, tz_name).isoformat(),
        }
        mrr_params = {
            "fee_type__exact": "subscription",
            "currency__exact": code,
            "invoice__status": "finalized",
            "invoice__issuing_date__gte": this_month.isoformat(),
            "invoice__issuing_date__lt": next_month.isoformat(),
        }
        figures = [
            Figure(
                "Outstanding",
                format_money(outstanding.get(code, zero), code),
                _invoices(preset="unpaid", currency__exact=code),
            ),
            Figure(
                "Overdue",
                format_money(overdue.get(code, zero), code),
                _invoices(preset="past_due", currency__exact=code),
            ),
            Figure(
                f"Invoiced this month ({_month_name(this_month)})",
                format_money(invoiced.get((this_month, code), zero), code),
                _invoices(**_period(code, this_month, next_month)),
            ),
            Figure(
                f"Invoiced last month ({_month_name(last_month)})",
                format_money(invoiced.get((last_month, code), zero), code),
                _invoices(**_period(code, last_month, this_month)),
            ),
            Figure(
                "Collected this month",
                format_money(paid.get((this_month, code), zero), code),
                _list_url("admin:payments_payment_changelist", **paid_params),
            ),
            Figure(
                "MRR",
                format_money(recurring.get((this_month, code), zero), code),
                _list_url("admin:invoicing_fee_changelist", **mrr_params),
            ),
            Figure(
                "Drafts awaiting finalization",
                str(drafts.get(code, 0)),
                _invoices(status__exact="draft", currency__exact=code),
            ),
            Figure(
                "Failed payments",
                str(failed.get(code, 0)),
                _invoices(status__exact="finalized", payment_status__exact="failed", currency__exact=code),
            ),
        ]
        chart = svg_chart.bars_and_line(
            labels=[f"{month:%b}" for month in months],
            bars={
                "Invoiced": [invoiced.get((month, code), zero) for month in months],
                "Collected": [paid.get((month, code), zero) for month in months],
            },
            line=("MRR", [recurring.get((month, code), zero) for month in months]),
            title=f"{code}: invoiced vs collected, and MRR, {_month_name(months[0])} to {_month_name(months[-1])}",
            value_format="{:,.0f}" if decimal_places(code) == 0 else "{:,.2f}",
        )
        currencies.append({"code": code, "figures": figures, "chart": chart})
    return {
        "as_of": format_instant(now, tz_name),
        "timezone": tz_name,
        "currencies": currencies,
        "aging_url": reverse("admin:console-aging"),
        "activity_url": reverse("admin:console-activity"),
    }


# --- Receivables aging -------------------------------------------------------------------------

# Customers per page of the aging table (the CSV has them all).
AGING_PAGE_SIZE = 100


@staff_member_required
def aging_view(request: HttpRequest) -> HttpResponse:
    _require(request, *VIEW_PERMISSIONS)
    organization = Organization.current()
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(organization.timezone or "UTC")).date()
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="aging-{today}.csv"'
        writer = csv.writer(response)
        writer.writerow(["customer", "name", "currency", *analytics.AGING_BUCKETS, "total"])
        for row in analytics.receivables_aging(today=today):
            writer.writerow(
                [row.external_id, row.name, row.currency]
                + [f"{row.buckets[name]:.{decimal_places(row.currency)}f}" for name in analytics.AGING_BUCKETS]
                + [f"{row.total:.{decimal_places(row.currency)}f}"]
            )
        return response
    # One page of customers at a time; the totals are every customer's (summary rows).
    paginator = Paginator(analytics.aging_customers().values_list("id", flat=True), AGING_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    rows = analytics.receivables_aging(today=today, customer_ids=page.object_list)
    totals = analytics.aging_totals(today=today)
    # One reverse for every row (a thousand customers must not cost a thousand URL resolutions).
    placeholder = "00000000-0000-0000-0000-000000000000"
    customer_url = reverse("admin:customers_customer_change", args=[placeholder])
    aging_url = reverse("admin:console-aging")
    context = {
        **admin.site.each_context(request),
        "title": f"Receivables aging on {today} ({organization.timezone or 'UTC'})",
        "buckets": analytics.AGING_BUCKETS,
        "rows": [
            {
                "url": customer_url.replace(placeholder, row.customer_id),
                "external_id": row.external_id,
                "name": row.name,
                "currency": row.currency,
                "cells": [format_money(row.buckets[name], row.currency) for name in analytics.AGING_BUCKETS],
                "total": format_money(row.total, row.currency),
            }
            for row in rows
        ],
        "totals": [
            {
                "currency": code,
                "cells": [format_money(values[name], code) for name in (*analytics.AGING_BUCKETS, "total")],
            }
            for code, values in totals.items()
        ],
        "page": page,
        "customer_count": paginator.count,
        "previous_url": f"{aging_url}?page={page.previous_page_number()}" if page.has_previous() else "",
        "next_url": f"{aging_url}?page={page.next_page_number()}" if page.has_next() else "",
        "csv_url": f"{aging_url}?format=csv",
    }
    return TemplateResponse(request, "admin/tollgate/aging.html", context)


# --- Record payment ----------------------------------------------------------------------------


class RecordPaymentForm(forms.Form):
    amount = forms.CharField(help_text="In currency units, e.g. 23.45. Part of what is due is fine.")
    paid_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Payment date")
    reference = forms.CharField(max_length=40, help_text="Bank transfer reference, cheque number...")

    def __init__(self, *args: Any, invoice: Invoice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice

    def clean_amount(self) -> Decimal:
        text = self.cleaned_data["amount"].replace(",", "").strip()
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise forms.ValidationError("Enter an amount such as 23.45.") from None
        places = decimal_places(self.invoice.currency)
        if amount <= 0:
            raise forms.ValidationError("The amount must be more than zero.")
        if -amount.as_tuple().exponent > places:  # type: ignore[operator]
            raise forms.ValidationError(f"{self.invoice.currency} has {places} decimal places.")
        due = self.invoice.total_due_amount
        if amount > due:
            raise forms.ValidationError(f"That is more than what is due ({format_money(due, self.invoice.currency)}).")
        return amount


PAYMENT_ERRORS = {
    "greater_than": "That is more than what is due.",
    "invalid_status": "Only a finalized invoice can be paid.",
    "value_is_mandatory": "A reference is required.",
    "value_is_invalid": "That value is not valid.",
}


@staff_member_required
def record_payment_view(request: HttpRequest, invoice_id: str) -> HttpResponse:
    """Step 1 (GET or an invalid POST): the form. Step 2 (POST without `confirm`): what will
    happen. Step 3 (POST with `confirm`): the manual payment, through the API's service."""
    _require(request, RECORD_PAYMENT_PERMISSION)
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    invoice_url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
    organization = Organization.current()
    tz_name = organization.timezone or "UTC"
    local_today = timezone.now().astimezone(zoneinfo.ZoneInfo(tz_name)).date()
    form = RecordPaymentForm(
        request.POST if request.method == "POST" else None,
        invoice=invoice,
        initial={"amount": f"{invoice.total_due_amount:.{decimal_places(invoice.currency)}f}", "paid_on": local_today},
    )
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": f"Record payment on {invoice}",
        "invoice": invoice,
        "invoice_url": invoice_url,
        "due": format_money(invoice.total_due_amount, invoice.currency),
        "form": form,
        "opts": Invoice._meta,
    }
    if invoice.status not in PAYABLE_STATUSES or invoice.total_due_amount <= 0:
        context["refusal"] = (
            "Nothing is due on this invoice."
            if invoice.status in PAYABLE_STATUSES
            else "Only a finalized invoice can be paid."
        )
        return TemplateResponse(request, "admin/tollgate/record_payment.html", context)
    if request.method != "POST" or not form.is_valid():
        return TemplateResponse(request, "admin/tollgate/record_payment.html", context)
    amount: Decimal = form.cleaned_data["amount"]
    paid_on: date = form.cleaned_data["paid_on"]
    if "confirm" not in request.POST:
        context["confirm"] = {
            "amount": format_money(amount, invoice.currency),
            "left": format_money(invoice.total_due_amount - amount, invoice.currency),
        }
        return TemplateResponse(request, "admin/tollgate/record_payment.html", context)
    now_local = timezone.now().astimezone(zoneinfo.ZoneInfo(tz_name))
    paid_at = datetime.combine(
        paid_on, now_local.time() if paid_on == local_today else datetime.min.time(), now_local.tzinfo
    )
    try:
        payment = services.payment_create_manual(
            invoice_id=invoice.pk,
            amount_cents=to_cents(amount, invoice.currency),
            reference=form.cleaned_data["reference"],
            paid_at=paid_at,
        )
    except services.PaymentError as error:
        form.add_error(None, PAYMENT_ERRORS.get(error.code, "The payment was refused."))
        return TemplateResponse(request, "admin/tollgate/record_payment.html", context)
    actor = f"admin:{request.user.get_username()}"
    InvoiceEvent.objects.create(
        invoice=invoice,
        kind="payment_recorded",
        actor=actor,
        payload={
            "payment_id": str(payment.pk),
            "amount_cents": to_cents(payment.amount, payment.currency),
            "reference": payment.reference,
            "trigger": PaymentTrigger.MANUAL,
        },
    )
    admin.site.get_model_admin(Invoice).log_change(
        request, invoice, f"Recorded payment {payment.reference} of {format_money(payment.amount, payment.currency)}"
    )
    messages.success(
        request,
        f"{invoice}: payment of {format_money(payment.amount, payment.currency)} recorded ({payment.reference}).",
    )
    return HttpResponseRedirect(invoice_url)


urlpatterns = [
    path("aging/", aging_view, name="console-aging"),
    path("invoices/<uuid:invoice_id>/record-payment/", record_payment_view, name="console-record-payment"),
]


# --- Retry payment -----------------------------------------------------------------------------


@staff_member_required
def retry_payment_view(request: HttpRequest, invoice_id: str) -> HttpResponse:
    """Confirm, then start a new collection attempt now (the service the API's retry calls)."""
    _require(request, RECORD_PAYMENT_PERMISSION)
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    invoice_url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": f"Retry payment: {invoice}",
        "opts": Invoice._meta,
        "invoice": invoice,
        "invoice_url": invoice_url,
        "explanation": "A new attempt to collect what is due starts now with the customer's payment provider.",
        "total": format_money(invoice.total_amount, invoice.currency),
        "due": format_money(invoice.total_due_amount, invoice.currency),
        "button": "Retry payment",
    }
    if request.method == "POST":
        try:
            services.invoice_payment_retry(invoice_id=invoice.pk, trigger=PaymentTrigger.ADMIN)
        except services.PaymentError as error:
            context["error"] = RETRY_ERRORS.get(error.code, "The payment could not be retried.")
        except ProviderUnavailable:
            context["error"] = "The payment provider cannot be reached; try again in a few minutes."
        else:
            invoice.refresh_from_db()
            admin.site.get_model_admin(Invoice).log_change(request, invoice, "Payment retried")
            messages.success(request, f"{invoice}: payment retried ({invoice.get_payment_status_display().lower()}).")
            return HttpResponseRedirect(invoice_url)
    return TemplateResponse(request, "admin/tollgate/invoice_confirm.html", context)


RETRY_ERRORS = {
    "invalid_status": "Only a finalized invoice that is not paid can be retried.",
    "invalid_payment_provider": "This customer does not pay through a payment provider: record the payment instead.",
    "payment_processor_is_currently_handling_payment": "A payment attempt is already under way.",
    "payment_provider_not_configured": "No payment provider is configured for this customer.",
    "payment_provider_unavailable": "The payment provider cannot be reached; try again in a few minutes.",
}


# --- Customer 360 ------------------------------------------------------------------------------


@staff_member_required
def customer_360_view(request: HttpRequest, customer_id: str) -> HttpResponse:
    """One customer on one page: outstanding per currency, subscriptions with this period's usage
    (the current usage API's code path), invoices, payments, credit notes and a timeline."""
    _require(request, "customers.view_customer", "invoicing.view_invoice")
    customer = get_object_or_404(Customer, pk=customer_id)
    tz_name = Organization.current().timezone or "UTC"
    invoices = list(customer.invoices.order_by("-issuing_date", "-created_at")[:50])
    outstanding: dict[str, Decimal] = {}
    for invoice in customer.invoices.filter(analytics.outstanding_q()).only(
        "currency", "total_amount", "total_paid_amount", "status"
    ):
        outstanding[invoice.currency] = outstanding.get(invoice.currency, Decimal(0)) + invoice.total_due_amount
    subscriptions = []
    for subscription in customer.subscriptions.select_related("plan").order_by("-created_at"):
        usage_text = "-"
        if subscription.status == SubscriptionStatus.ACTIVE:
            try:
                usage = customer_usage(subscription=subscription, at=timezone.now())
            except Exception:  # a usage read must never take the customer page down
                usage_text = "unavailable"
            else:
                period = f"{usage.from_datetime:%Y-%m-%d} to {usage.to_datetime:%Y-%m-%d}"
                usage_text = f"{format_money(usage.total_amount, usage.currency)} ({period})"
        subscriptions.append(
            {
                "external_id": subscription.external_id,
                "plan": subscription.plan.name,
                "status": subscription.get_status_display(),
                "usage": usage_text,
                "url": reverse("admin:plans_subscription_change", args=[subscription.pk]),
            }
        )
    payments = list(customer.payments.order_by("-created_at")[:50])
    notes = list(customer.credit_notes.order_by("-created_at")[:50])
    timeline = list(
        InvoiceEvent.objects.filter(invoice__customer=customer).select_related("invoice").order_by("-created_at")[:50]
    )
    invoice_url = reverse("admin:invoicing_invoice_change", args=["00000000-0000-0000-0000-000000000000"])
    context = {
        **admin.site.each_context(request),
        "title": f"{customer.name or customer.external_id} ({customer.external_id})",
        "customer": customer,
        "customer_url": reverse("admin:customers_customer_change", args=[customer.pk]),
        "statement_url": reverse("admin:console-customer-statement", args=[customer.pk]),
        "outstanding": [format_money(amount, code) for code, amount in sorted(outstanding.items())],
        "subscriptions": subscriptions,
        "invoices": [
            {
                "number": str(invoice),
                "url": invoice_url.replace("00000000-0000-0000-0000-000000000000", str(invoice.pk)),
                "status": invoice.get_status_display(),
                "payment_status": invoice.get_payment_status_display(),
                "total": format_money(invoice.total_amount, invoice.currency),
                "due": format_money(invoice.total_due_amount, invoice.currency),
                "issuing_date": invoice.issuing_date,
            }
            for invoice in invoices
        ],
        "payments": [
            {
                "amount": format_money(payment.amount, payment.currency),
                "status": payment.get_status_display(),
                "reference": payment.reference or payment.provider_payment_id,
                "paid_at": format_instant(payment.paid_at, tz_name),
                "url": reverse("admin:payments_payment_change", args=[payment.pk]),
            }
            for payment in payments
        ],
        "credit_notes": [
            {
                "number": note.number,
                "total": format_money(note.total_amount, note.currency),
                "url": reverse("admin:invoicing_creditnote_change", args=[note.pk]),
            }
            for note in notes
        ],
        "timeline": [
            {
                "when": format_instant(event.created_at, tz_name),
                "what": event.kind.replace("_", " "),
                "who": event.actor,
                "invoice": str(event.invoice),
            }
            for event in timeline
        ],
    }
    return TemplateResponse(request, "admin/tollgate/customer_360.html", context)


urlpatterns += [
    path("invoices/<uuid:invoice_id>/retry-payment/", retry_payment_view, name="console-retry-payment"),
    path("customers/<uuid:customer_id>/", customer_360_view, name="console-customer"),
]


# --- Activity (change history) -----------------------------------------------------------------

# The models whose changes are kept with before and after values (django-simple-history).
HISTORY_MODELS = {
    "plan": ("plans", "Plan"),
    "charge": ("plans", "Charge"),
    "tax": ("plans", "Tax"),
    "coupon": ("plans", "Coupon"),
    "billable metric": ("metrics", "BillableMetric"),
    "customer": ("customers", "Customer"),
    "organization": ("customers", "Organization"),
}
ACTIVITY_ROWS = 100
HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


@staff_member_required
def activity_view(request: HttpRequest) -> HttpResponse:
    """Every tracked change, newest first, filterable by user, model and date, each with the
    fields it changed (before -> after)."""
    from django.apps import apps
    from django.contrib.auth import get_user_model

    _require(request, *VIEW_PERMISSIONS)
    chosen = request.GET.get("model", "")
    username = request.GET.get("user", "")
    since = request.GET.get("since", "")
    until = request.GET.get("until", "")
    tz_name = Organization.current().timezone or "UTC"
    records: list[Any] = []
    for label, (app_label, model_name) in HISTORY_MODELS.items():
        if chosen and chosen != label:
            continue
        history = apps.get_model(app_label, model_name).history.select_related("history_user")
        if username:
            history = history.filter(history_user__username=username)
        if since:
            history = history.filter(history_date__gte=collected.local_midnight(date.fromisoformat(since), tz_name))
        if until:
            end = date.fromisoformat(until) + timedelta(days=1)
            history = history.filter(history_date__lt=collected.local_midnight(end, tz_name))
        records.extend((label, record) for record in history.order_by("-history_date")[:ACTIVITY_ROWS])
    records.sort(key=lambda item: item[1].history_date, reverse=True)
    rows = []
    for label, record in records[:ACTIVITY_ROWS]:
        changes = []
        previous = record.prev_record if record.history_type == "~" else None
        if previous is not None:
            delta = record.diff_against(previous)
            changes = [f"{change.field}: {change.old!s} -> {change.new!s}" for change in delta.changes]
        rows.append(
            {
                "when": format_instant(record.history_date, tz_name),
                # An API change names its key in the change reason ("api:<key name>", audit.history).
                "who": record.history_user.get_username()
                if record.history_user
                else (record.history_change_reason or "system"),
                "model": label,
                "object": str(record.instance)[:80],
                "type": HISTORY_TYPES.get(record.history_type, record.history_type),
                "changes": changes,
            }
        )
    context = {
        **admin.site.each_context(request),
        "title": "Activity",
        "rows": rows,
        "models": list(HISTORY_MODELS),
        "users": get_user_model().objects.filter(is_staff=True).order_by("username").values_list("username", flat=True),
        "chosen": chosen,
        "username": username,
        "since": since,
        "until": until,
    }
    return TemplateResponse(request, "admin/tollgate/activity.html", context)


urlpatterns += [path("activity/", activity_view, name="console-activity")]

urlpatterns += [
    path("customers/<uuid:customer_id>/statement/", statement_view, name="console-customer-statement"),
]
