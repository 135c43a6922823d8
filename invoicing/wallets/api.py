"""Lago's wallet routes: /wallets (+ metadata), /customers/{external_id}/wallets[/{code}] (+
metadata), /wallet_transactions, a wallet's transactions, one transaction, its consumptions and
fundings. Thin: parse, call the wallet services, answer Lago's shapes. (payment_url is served by
payments, which owns the providers.)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing_project.api.errors import NotFound
from billing_project.api.metadata import metadata_views
from billing_project.api.views import paginated, unwrap
from billing_project.money import to_cents
from customers.models import Customer
from metrics.models import BillableMetric
from plans.api.serializers import iso

from ..api.views import InvoicingView, actor_of
from . import selectors, services
from .models import RecurringTransactionRule, Wallet, WalletStatus, WalletTransaction

_OBJECT = OpenApiResponse(response=OpenApiTypes.OBJECT)


def _credits(value: Decimal | None) -> str | None:
    """A decimal as Lago's strings: "10", "0.5", never "1E+1"."""
    return None if value is None else format(Decimal(value).normalize(), "f")


def serialize_rule(rule: RecurringTransactionRule) -> dict[str, Any]:
    return {
        "lago_id": str(rule.pk),
        "trigger": rule.trigger,
        "method": rule.method,
        "interval": rule.interval or None,
        "status": rule.status,
        "paid_credits": _credits(rule.paid_credits),
        "granted_credits": _credits(rule.granted_credits),
        "threshold_credits": _credits(rule.threshold_credits),
        "target_ongoing_balance": _credits(rule.target_ongoing_balance),
        "started_at": iso(rule.started_at),
        "expiration_at": iso(rule.expiration_at),
        "created_at": iso(rule.created_at),
        "transaction_name": rule.transaction_name or None,
        "transaction_metadata": rule.transaction_metadata or [],
        "invoice_requires_successful_payment": rule.invoice_requires_successful_payment,
        "ignore_paid_top_up_limits": rule.ignore_paid_top_up_limits,
        "grants_target_top_up": False,
        "purchase_order_number": None,
        "payment_method": None,
        "applied_invoice_custom_sections": None,
    }


def serialize_wallet(wallet: Wallet, metric_codes: dict[str, str] | None = None) -> dict[str, Any]:
    currency = wallet.currency
    if metric_codes is None:
        metric_codes = {
            str(pk): code
            for pk, code in BillableMetric.objects.filter(pk__in=wallet.billable_metric_ids).values_list("pk", "code")
        }
    rules = [r for r in wallet.recurring_transaction_rules.all() if r.status == WalletStatus.ACTIVE]
    return {
        "lago_id": str(wallet.pk),
        "lago_customer_id": str(wallet.customer_id),
        "external_customer_id": wallet.customer.external_id,
        "status": wallet.status,
        "currency": currency,
        "name": wallet.name or None,
        "code": wallet.code,
        "priority": wallet.priority,
        "rate_amount": _credits(wallet.rate_amount),
        "credits_balance": _credits(wallet.credits_balance),
        "balance_cents": to_cents(wallet.balance, currency),
        "consumed_credits": _credits(wallet.consumed_credits),
        "consumed_amount_cents": to_cents(wallet.consumed_amount, currency),
        "ongoing_balance_cents": to_cents(wallet.ongoing_balance, currency),
        "ongoing_usage_balance_cents": to_cents(wallet.ongoing_usage_balance, currency),
        "credits_ongoing_balance": _credits(wallet.credits_ongoing_balance),
        "credits_ongoing_usage_balance": _credits(wallet.credits_ongoing_usage_balance),
        "created_at": iso(wallet.created_at),
        "expiration_at": iso(wallet.expiration_at),
        "last_balance_sync_at": iso(wallet.last_balance_sync_at),
        "last_consumed_credit_at": iso(wallet.last_consumed_credit_at),
        "terminated_at": iso(wallet.terminated_at),
        "invoice_requires_successful_payment": wallet.invoice_requires_successful_payment,
        "paid_top_up_min_amount_cents": None
        if wallet.paid_top_up_min_amount is None
        else to_cents(wallet.paid_top_up_min_amount, currency),
        "paid_top_up_max_amount_cents": None
        if wallet.paid_top_up_max_amount is None
        else to_cents(wallet.paid_top_up_max_amount, currency),
        "applies_to": {
            "fee_types": list(wallet.allowed_fee_types or []),
            "billable_metric_codes": [metric_codes[m] for m in wallet.billable_metric_ids if m in metric_codes],
        },
        "recurring_transaction_rules": [serialize_rule(rule) for rule in rules],
        "metadata": wallet.metadata or {},
        "payment_method": None,
        "applied_invoice_custom_sections": None,
        "billing_entity_code": None,
        "purchase_order_number": None,
    }


def serialize_transaction(row: WalletTransaction, remaining: Decimal | None = None) -> dict[str, Any]:
    wallet = row.wallet
    inbound = row.transaction_type == "inbound"
    return {
        "lago_id": str(row.pk),
        "lago_wallet_id": str(row.wallet_id),
        "lago_invoice_id": str(row.invoice_id) if row.invoice_id else None,
        "lago_credit_note_id": None,
        "lago_voided_invoice_id": str(row.voided_invoice_id) if row.voided_invoice_id else None,
        "status": row.status,
        "source": row.source,
        "transaction_status": row.transaction_status,
        "transaction_type": row.transaction_type,
        "amount": _credits(row.amount),
        "credit_amount": _credits(row.credit_amount),
        "remaining_amount_cents": to_cents(remaining, wallet.currency) if inbound and remaining is not None else None,
        "remaining_credit_amount": _credits(wallet.to_credits(remaining))
        if inbound and remaining is not None
        else None,
        "priority": row.priority,
        "settled_at": iso(row.settled_at),
        "failed_at": iso(row.failed_at),
        "created_at": iso(row.created_at),
        "metadata": row.metadata or [],
        "name": row.name or None,
        "invoice_requires_successful_payment": row.invoice_requires_successful_payment,
        "purchase_order_number": None,
        "payment_method": None,
        "applied_invoice_custom_sections": None,
    }


def _wallets() -> Any:
    return Wallet.objects.select_related("customer").prefetch_related("recurring_transaction_rules")


def _answer(wallet: Wallet) -> Response:
    return Response({"wallet": serialize_wallet(_wallets().get(pk=wallet.pk))})


def _customer(external_id: Any) -> Customer | None:
    return Customer.live.filter(external_id=external_id).first() if external_id else None


_CREATE_FIELDS = (
    "name",
    "code",
    "currency",
    "priority",
    "paid_credits",
    "granted_credits",
    "expiration_at",
    "applies_to",
    "invoice_requires_successful_payment",
    "paid_top_up_min_amount_cents",
    "paid_top_up_max_amount_cents",
    "ignore_paid_top_up_limits_on_creation",
    "recurring_transaction_rules",
    "transaction_metadata",
    "transaction_name",
    "metadata",
)
_UPDATE_FIELDS = (
    "name",
    "priority",
    "expiration_at",
    "applies_to",
    "invoice_requires_successful_payment",
    "paid_top_up_min_amount_cents",
    "paid_top_up_max_amount_cents",
    "recurring_transaction_rules",
    "metadata",
)


def _create(request: Request, customer: Customer | None, data: dict[str, Any]) -> Response:
    if data.get("rate_amount") in (None, ""):
        from ..errors import InvoicingError

        raise InvoicingError({"rate_amount": ["value_is_mandatory"]})
    kwargs = {name: data[name] for name in _CREATE_FIELDS if name in data and data[name] is not None}
    wallet = services.wallet_create(
        customer=customer, rate_amount=data["rate_amount"], actor=actor_of(request), **kwargs
    )
    return _answer(wallet)


def _update(request: Request, wallet: Wallet, data: dict[str, Any]) -> Response:
    kwargs = {name: data[name] for name in _UPDATE_FIELDS if name in data}
    return _answer(services.wallet_update(wallet=wallet, actor=actor_of(request), **kwargs))


def _list(request: Request, wallets: Any) -> Response:
    return paginated(request, wallets.order_by("-created_at", "id"), "wallets", serialize_wallet)


class WalletsView(InvoicingView):
    resource_name = "wallet"

    @extend_schema(operation_id="findAllWallets", responses={200: _OBJECT})
    def get(self, request: Request) -> Response:
        rows = _wallets()
        external_id = request.query_params.get("external_customer_id")
        if external_id:
            customer = _customer(external_id)
            if customer is None:
                raise NotFound("customer")
            rows = rows.filter(customer=customer)
        return _list(request, rows)

    @extend_schema(operation_id="createWallet", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def post(self, request: Request) -> Response:
        data = unwrap(request, "wallet")
        return _create(request, _customer(data.get("external_customer_id")), data)


class WalletView(InvoicingView):
    resource_name = "wallet"

    @extend_schema(operation_id="findWallet", responses={200: _OBJECT})
    def get(self, request: Request, wallet_id: str) -> Response:
        return _answer(_by_id(wallet_id))

    @extend_schema(operation_id="updateWallet", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def put(self, request: Request, wallet_id: str) -> Response:
        return _update(request, _by_id(wallet_id), unwrap(request, "wallet"))

    @extend_schema(operation_id="destroyWallet", responses={200: _OBJECT})
    def delete(self, request: Request, wallet_id: str) -> Response:
        return _answer(services.wallet_terminate(wallet=_by_id(wallet_id), actor=actor_of(request)))


def _by_id(wallet_id: str) -> Wallet:
    try:
        return services.wallet_by_id(wallet_id)
    except Exception:
        raise NotFound("wallet") from None


def _by_code(external_id: str, code: str) -> Wallet:
    customer = _customer(external_id)
    if customer is None:
        raise NotFound("customer")
    wallet = Wallet.objects.select_related("customer").filter(customer=customer, code=code).first()
    if wallet is None:
        raise NotFound("wallet")
    return wallet


class CustomerWalletsView(InvoicingView):
    resource_name = "customer"

    @extend_schema(operation_id="findAllCustomerWallets", responses={200: _OBJECT})
    def get(self, request: Request, external_id: str) -> Response:
        customer = _customer(external_id)
        if customer is None:
            raise NotFound("customer")
        return _list(request, _wallets().filter(customer=customer))

    @extend_schema(operation_id="createCustomerWallet", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def post(self, request: Request, external_id: str) -> Response:
        customer = _customer(external_id)
        if customer is None:
            raise NotFound("customer")
        return _create(request, customer, unwrap(request, "wallet"))


class CustomerWalletView(InvoicingView):
    resource_name = "wallet"

    @extend_schema(operation_id="findCustomerWallet", responses={200: _OBJECT})
    def get(self, request: Request, external_id: str, code: str) -> Response:
        return _answer(_by_code(external_id, code))

    @extend_schema(operation_id="updateCustomerWallet", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def put(self, request: Request, external_id: str, code: str) -> Response:
        return _update(request, _by_code(external_id, code), unwrap(request, "wallet"))

    @extend_schema(operation_id="destroyCustomerWallet", responses={200: _OBJECT})
    def delete(self, request: Request, external_id: str, code: str) -> Response:
        wallet = _by_code(external_id, code)
        return _answer(services.wallet_terminate(wallet=wallet, actor=actor_of(request)))


def _set_metadata(wallet: Wallet, metadata: Any, merge: bool, request: Request) -> Any:
    return services.wallet_metadata_set(wallet=wallet, metadata=metadata, merge=merge, actor=actor_of(request)).metadata


def _delete_metadata(wallet: Wallet, key: str | None, request: Request) -> Any:
    # Lago answers a wallet left without metadata with null.
    return services.wallet_metadata_delete(wallet=wallet, key=key, actor=actor_of(request)).metadata or None


# The metadata of a wallet: replace (POST), merge (PATCH), delete all (DELETE); one key (DELETE).
WalletMetadataView, WalletMetadataKeyView = metadata_views(
    prefix="Wallet",
    resource_name="wallet",
    find=lambda wallet_id: _by_id(wallet_id),
    set_metadata=_set_metadata,
    delete_metadata=_delete_metadata,
    with_request=True,
)
CustomerWalletMetadataView, CustomerWalletMetadataKeyView = metadata_views(
    prefix="CustomerWallet",
    resource_name="wallet",
    find=lambda external_id, code: _by_code(external_id, code),
    set_metadata=_set_metadata,
    delete_metadata=_delete_metadata,
    with_request=True,
)


# --------------------------------------------------------------------------------------------
# Transactions


class WalletTransactionsView(InvoicingView):
    resource_name = "wallet"

    @extend_schema(operation_id="createWalletTransaction", request=OpenApiTypes.OBJECT, responses={200: _OBJECT})
    def post(self, request: Request) -> Response:
        data = unwrap(request, "wallet_transaction")
        wallet = _by_id(str(data.get("wallet_id") or ""))
        rows = services.wallet_transactions_create(
            wallet=wallet,
            actor=actor_of(request),
            paid_credits=data.get("paid_credits"),
            granted_credits=data.get("granted_credits"),
            voided_credits=data.get("voided_credits"),
            name=data.get("name"),
            metadata=data.get("metadata"),
            invoice_requires_successful_payment=data.get("invoice_requires_successful_payment"),
            ignore_paid_top_up_limits=bool(data.get("ignore_paid_top_up_limits") or False),
        )
        remaining = selectors.remaining_by_transaction(wallet)
        fresh = WalletTransaction.objects.select_related("wallet").filter(pk__in=[r.pk for r in rows])
        ordered = sorted(fresh, key=lambda r: [x.pk for x in rows].index(r.pk))
        return Response({"wallet_transactions": [serialize_transaction(r, remaining.get(r.pk)) for r in ordered]})


class WalletTransactionListView(InvoicingView):
    resource_name = "wallet"

    @extend_schema(operation_id="findAllWalletTransactions", responses={200: _OBJECT})
    def get(self, request: Request, wallet_id: str) -> Response:
        wallet = _by_id(wallet_id)
        rows = WalletTransaction.objects.select_related("wallet").filter(wallet=wallet)
        for name in ("status", "transaction_status", "transaction_type"):
            value = request.query_params.get(name)
            if value:
                rows = rows.filter(**{name: value})
        remaining = selectors.remaining_by_transaction(wallet)
        return paginated(
            request,
            rows.order_by("-created_at", "-id"),
            "wallet_transactions",
            lambda row: serialize_transaction(row, remaining.get(row.pk)),
        )


def _transaction(transaction_id: str) -> WalletTransaction:
    parsed = services._uuid(transaction_id)
    row = WalletTransaction.objects.select_related("wallet").filter(pk=parsed).first() if parsed else None
    if row is None:
        raise NotFound("wallet_transaction")
    return row


class WalletTransactionView(InvoicingView):
    resource_name = "wallet_transaction"

    @extend_schema(operation_id="findWalletTransaction", responses={200: _OBJECT})
    def get(self, request: Request, transaction_id: str) -> Response:
        row = _transaction(transaction_id)
        remaining = selectors.remaining_by_transaction(row.wallet)
        return Response({"wallet_transaction": serialize_transaction(row, remaining.get(row.pk))})


def _allocation_view(collection: str, inbound: bool) -> type[InvoicingView]:
    class AllocationView(InvoicingView):
        resource_name = "wallet_transaction"

        @extend_schema(operation_id=f"findAll{collection.title().replace('_', '')}", responses={200: _OBJECT})
        def get(self, request: Request, transaction_id: str) -> Response:
            row = _transaction(transaction_id)
            wallet = row.wallet
            allocations = selectors.wallet_allocations(wallet)
            others = {t.pk: t for t in WalletTransaction.objects.select_related("wallet").filter(wallet=wallet)}
            remaining = selectors.remaining_by_transaction(wallet)
            mine = [a for a in allocations if (a.inbound_id if inbound else a.outbound_id) == row.pk]
            items = [
                {
                    "lago_id": f"{a.inbound_id}:{a.outbound_id}",
                    "amount_cents": to_cents(a.amount, wallet.currency),
                    "credit_amount": _credits(wallet.to_credits(a.amount)),
                    "created_at": iso(others[a.outbound_id].created_at),
                    "wallet_transaction": serialize_transaction(
                        others[a.outbound_id if inbound else a.inbound_id],
                        remaining.get(a.outbound_id if inbound else a.inbound_id),
                    ),
                }
                for a in mine
            ]
            return paginated(request, items, collection, lambda item: item, count=len)

    return AllocationView


WalletTransactionConsumptionsView = _allocation_view("wallet_transaction_consumptions", inbound=True)
WalletTransactionFundingsView = _allocation_view("wallet_transaction_fundings", inbound=False)
