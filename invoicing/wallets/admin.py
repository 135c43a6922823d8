"""Wallets in the admin: on the customer page (balance, ongoing balance, a link to each wallet),
and each wallet with its transactions. Top up (paid or granted), void credits and terminate go
through the same services as the API; the ledger itself is read-only here."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Max, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from billing_project.admin import money_display
from billing_project.money import decimal_places, format_money
from customers.models import Customer

from ..errors import InvoicingError
from . import selectors, services
from .models import Wallet, WalletStatus, WalletTransaction

_MESSAGES = {
    "wallet_limit_reached": "This customer has six active wallets already.",
    "wallet_is_terminated": "A terminated wallet takes no more credits.",
    "insufficient_credits": "More credits than the wallet holds.",
    "amount_below_minimum": "Below the wallet's minimum paid top-up.",
    "amount_above_maximum": "Above the wallet's maximum paid top-up.",
    "value_is_out_of_range": "Out of range.",
}


def _actor(request: HttpRequest) -> str:
    return f"admin:{getattr(request.user, 'username', '')}"


def _explain(error: InvoicingError) -> str:
    details = error.details or {error.code: [error.code]}
    return "; ".join(f"{field}: {_MESSAGES.get(code, code)}" for field, codes in details.items() for code in codes)


_TRANSACTION_COLUMNS: tuple[str, ...] = (
    "created_at",
    "transaction_type",
    "transaction_status",
    "status",
    "source",
    "credit_amount",
    "amount_money",
    "invoice",
    "voided_invoice",
    "settled_at",
)


class WalletTransactionInline(admin.TabularInline):
    model = WalletTransaction
    extra = 0
    can_delete = False
    fields = _TRANSACTION_COLUMNS
    readonly_fields = _TRANSACTION_COLUMNS
    ordering = ["-created_at"]
    amount_money = money_display("amount", currency=lambda row: row.wallet.currency, sortable=False)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WalletTransaction]:
        return super().get_queryset(request).select_related("wallet")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WalletForm(forms.ModelForm):
    """The change page's top-up box: credits to buy, to grant or to void (all optional)."""

    code = forms.CharField(required=False, help_text="Empty: made from the name, unique.")
    currency = forms.CharField(required=False, max_length=3, help_text="Empty: the customer's.")
    top_up_paid_credits = forms.DecimalField(required=False, min_value=0, label="Buy credits (paid)")
    top_up_granted_credits = forms.DecimalField(required=False, min_value=0, label="Grant credits (free)")
    void_credits = forms.DecimalField(required=False, min_value=0, label="Void credits")
    initial_paid_credits = forms.DecimalField(required=False, min_value=0, label="Paid credits")
    initial_granted_credits = forms.DecimalField(required=False, min_value=0, label="Granted credits")

    class Meta:
        model = Wallet
        fields = ["customer", "name", "code", "currency", "rate_amount", "priority", "expiration_at"]


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    form = WalletForm
    list_display = ["__str__", "customer", "status", "priority", "credits_balance", "balance_money", "ongoing_money"]
    list_filter = ["status", "currency"]
    search_fields = ["name", "code", "customer__external_id", "customer__name"]
    inlines = [WalletTransactionInline]
    actions = ["terminate_wallets"]
    readonly_fields = [
        "status",
        "balance_money",
        "credits_balance",
        "ongoing_money",
        "ongoing_usage_money",
        "consumed_credits",
        "paid_and_granted",
        "terminated_at",
        "created_at",
    ]

    @admin.display(description="balance", ordering="balance")
    def balance_money(self, wallet: Wallet) -> str:
        return format_money(wallet.balance, wallet.currency)

    @admin.display(description="ongoing balance", ordering="ongoing_balance")
    def ongoing_money(self, wallet: Wallet) -> str:
        return format_money(wallet.ongoing_balance, wallet.currency)

    ongoing_usage_money = money_display("ongoing_usage_balance", description="ongoing usage balance")

    @admin.display(description="paid and granted")
    def paid_and_granted(self, wallet: Wallet) -> str:
        split = selectors.balance_split(wallet)
        code = wallet.currency
        return (
            f"Balance: {format_money(split.paid_balance, code)} paid, {format_money(split.granted_balance, code)} "
            f"granted. Consumed by invoices: {format_money(split.paid_consumed, code)} paid, "
            f"{format_money(split.granted_consumed, code)} granted."
        )

    def get_fieldsets(self, request: HttpRequest, obj: Wallet | None = None) -> Any:
        if obj is None:
            terms = ["customer", "name", "code", "currency", "rate_amount", "priority", "expiration_at"]
            return [
                (None, {"fields": terms}),
                ("First top-up", {"fields": ["initial_paid_credits", "initial_granted_credits"]}),
            ]
        return [
            (None, {"fields": ["name", "priority", "expiration_at", "status", "terminated_at", "created_at"]}),
            (
                "Balances",
                {
                    "fields": [
                        "credits_balance",
                        "balance_money",
                        "ongoing_money",
                        "ongoing_usage_money",
                        "consumed_credits",
                        "paid_and_granted",
                    ]
                },
            ),
            ("Top up or void", {"fields": ["top_up_paid_credits", "top_up_granted_credits", "void_credits"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Wallet | None = None) -> Any:
        return (
            self.readonly_fields
            if obj is None or obj.status == WalletStatus.ACTIVE
            else [*self.readonly_fields, "name", "priority", "expiration_at"]
        )

    def save_model(self, request: HttpRequest, obj: Wallet, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        try:
            if not change:
                created = services.wallet_create(
                    customer=data["customer"],
                    rate_amount=data["rate_amount"],
                    actor=_actor(request),
                    name=data.get("name") or "",
                    code=data.get("code") or None,
                    currency=data.get("currency") or None,
                    priority=data.get("priority"),
                    expiration_at=data.get("expiration_at"),
                    paid_credits=data.get("initial_paid_credits"),
                    granted_credits=data.get("initial_granted_credits"),
                )
                obj.pk = created.pk
                return
            services.wallet_update(
                wallet=obj,
                actor=_actor(request),
                name=data.get("name"),
                priority=data.get("priority"),
                expiration_at=data.get("expiration_at"),
            )
            paid, granted, void = (
                data.get(k) or Decimal(0) for k in ("top_up_paid_credits", "top_up_granted_credits", "void_credits")
            )
            if paid or granted or void:
                services.wallet_transactions_create(
                    wallet=obj, actor=_actor(request), paid_credits=paid, granted_credits=granted, voided_credits=void
                )
        except InvoicingError as error:
            self.message_user(request, _explain(error), messages.ERROR)

    @admin.action(description="Terminate selected wallets (their credits are voided)")
    def terminate_wallets(self, request: HttpRequest, queryset: QuerySet[Wallet]) -> None:
        done = 0
        for wallet in queryset:
            services.wallet_terminate(wallet=wallet, actor=_actor(request))
            done += 1
        self.message_user(request, f"{done} wallet(s) terminated", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def prepaid_wallets(obj: Customer | None) -> str:
    """The customer's wallets as a table: balance, ongoing balance, consumed, a link to each."""
    if obj is None or obj.pk is None:
        return "-"
    wallets = list(Wallet.objects.filter(customer=obj).order_by("status", "priority", "created_at"))
    if not wallets:
        return "No wallet"
    rows = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{} {}</td><td>{} {}</td><td>{}</td></tr>',
        (
            (
                reverse("admin:invoicing_wallet_change", args=[w.pk]),
                str(w),
                w.status,
                w.priority,
                w.credits_balance.normalize(),
                f"({format_money(w.balance, w.currency)})",
                w.credits_ongoing_balance.normalize(),
                f"({format_money(w.ongoing_balance, w.currency)})",
                w.consumed_credits.normalize(),
            )
            for w in wallets
        ),
    )
    head = (
        "<tr><th>wallet</th><th>status</th><th>priority</th><th>balance (credits)</th>"
        "<th>ongoing balance</th><th>consumed credits</th></tr>"
    )
    table = format_html("<table>{}{}</table>", mark_safe(head), rows)  # noqa: S308 (a constant header)
    return format_html("{}{}", table, _wallet_alerts(wallets))


_CENTS_TYPES = ("wallet_balance_amount", "wallet_ongoing_balance_amount")


def _threshold_text(value: Decimal, alert_type: str, currency: str) -> str:
    """A threshold as Lago stores it (cents for the amount types, credits for the others), then
    what it means: the amount in the wallet's currency, or credits."""
    if alert_type in _CENTS_TYPES:
        return f"{value.normalize():f} ({format_money(value / Decimal(10) ** decimal_places(currency), currency)})"
    return f"{value.normalize():f} credits"


def _wallet_alerts(wallets: list[Wallet]) -> str:
    """The wallets' live alerts (Lago's /customers/{id}/wallets/{code}/alerts): code, type,
    thresholds, when one was last triggered. Two queries whatever their number."""
    from ..monitoring.models import Alert

    by_pk: dict[Any, Wallet] = {w.pk: w for w in wallets}
    alerts = list(
        Alert.objects.filter(wallet_id__in=list(by_pk), deleted_at__isnull=True)
        .annotate(last_triggered_at=Max("triggered__triggered_at"))
        .prefetch_related("thresholds")
        .order_by("created_at", "id")
    )
    if not alerts:
        return format_html("<p>{}</p>", "No wallet alert")

    def thresholds(alert: Alert) -> str:
        currency = by_pk[alert.wallet_id].currency
        parts = [
            ("every " if t.recurring else "")
            + (f"{t.code}: " if t.code else "")
            + _threshold_text(t.value, alert.alert_type, currency)
            for t in alert.thresholds.all()
        ]
        return "; ".join(parts)

    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                str(by_pk[a.wallet_id]),
                a.code,
                a.name or "-",
                a.alert_type,
                thresholds(a),
                a.last_triggered_at.isoformat(timespec="seconds") if a.last_triggered_at else "never",
            )
            for a in alerts
        ),
    )
    head = (
        "<tr><th>wallet</th><th>alert code</th><th>name</th><th>type</th><th>thresholds</th>"
        "<th>last triggered</th></tr>"
    )
    return format_html("<h4>Wallet alerts</h4><table>{}{}</table>", mark_safe(head), rows)  # noqa: S308


prepaid_wallets.short_description = "Wallets (prepaid credits)"  # type: ignore[attr-defined]


def attach_to_customer_page() -> None:
    """Invoicing may know customers (never the reverse): show the wallets on the customer admin
    that customers registered, as a read-only field (no inline formset for its forms to carry)."""
    customer_admin = admin.site._registry.get(Customer)
    if customer_admin is None or "prepaid_wallets" in customer_admin.readonly_fields:
        return
    customer_admin.prepaid_wallets = prepaid_wallets  # type: ignore[attr-defined]
    customer_admin.readonly_fields = [*customer_admin.readonly_fields, "prepaid_wallets"]  # type: ignore[misc]
    if customer_admin.fieldsets:
        customer_admin.fieldsets = [  # type: ignore[misc]
            *customer_admin.fieldsets,
            ("Wallets (prepaid credits)", {"fields": ["prepaid_wallets"]}),
        ]


attach_to_customer_page()
