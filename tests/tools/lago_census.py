"""Client-call census: every public method of lago-python-client 1.55.0's clients against a live
Tollgate, and how many of Lago's api/v1 routes Tollgate routes. Run by hand (not in the suite):

    .venv/bin/python tests/tools/lago_census.py --serve              # a server of its own (DATABASE_URL)
    .venv/bin/python tests/tools/lago_census.py --url http://127.0.0.1:8000 --api-key tg_...

`--serve` migrates the database, makes an API key, starts `manage.py runserver` on a free port,
runs the census and stops it. The census first creates what the calls need through the client
(tax, metric, plan, add-on, coupon, customer, subscription, wallet, event, one-off invoice, ...,
named with a fresh suffix so runs repeat), then calls each method once, destroys last.

Each call is classed:
- works: 2xx, and the client parsed the answer;
- refused: a Lago error answer of a route that exists (422 validation, 404 `<thing>_not_found`
  for ids the census could not make, 403, 400): the route is there and speaks Lago;
- no route: 404 `resource_not_found` (nothing routed at that path) or 405 `method_not_allowed`;
- fails: anything else (5xx, 401, an answer the client cannot parse), with its error.

Routes: Lago's api/v1 routes are listed in tests/tools/lago_api_v1_routes.txt (expanded from
getlago/lago-api config/routes.rb by tests/tools/lago_routes.py; PATCH and PUT of an update count
as two). A route counts as routed when Django resolves it to a view other than the catch-all that
answers its method.
"""

from __future__ import annotations

import argparse
import inspect
import os
import socket
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ROUTES_FILE = Path(__file__).with_name("lago_api_v1_routes.txt")
PATCH_AS_PUT = "patch_as_put"


# --- routes -----------------------------------------------------------------------------------


def routed_routes() -> tuple[int, int, list[str]]:
    """(Lago's routes, those Tollgate routes, the missing ones)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")
    import django

    django.setup()
    from django.urls import Resolver404, resolve

    from billing_project.api.errors import api_not_found

    lines = [line.split() for line in ROUTES_FILE.read_text().splitlines() if line.strip()]
    missing = []
    for method, path in lines:
        concrete = "/".join("x1" if part.startswith(":") else part for part in path.split("/"))
        try:
            match = resolve(concrete)
        except Resolver404:
            missing.append(f"{method} {path}")
            continue
        view = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
        if match.func is api_not_found or view is None:
            missing.append(f"{method} {path}")
            continue
        handler = method.lower()
        answers = hasattr(view, handler) or (
            handler == "patch" and hasattr(view, "put") and getattr(view, PATCH_AS_PUT, True)
        )
        if not answers:
            missing.append(f"{method} {path}")
    return len(lines), len(lines) - len(missing), missing


# --- calls ------------------------------------------------------------------------------------


class Census:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.ctx: dict[str, str] = {}
        self.results: list[tuple[str, str, str]] = []  # (call, class, detail)
        self.called: set[str] = set()

    def call(self, name: str, function: Callable[[], Any], keep: Callable[[Any], None] | None = None) -> None:
        from lago_python_client.exceptions import LagoApiError

        self.called.add(name)
        try:
            answer = function()
        except LagoApiError as error:
            body = error.response if isinstance(error.response, dict) else None
            code = (body or {}).get("code")
            status = error.status_code
            if status == 404 and code == "resource_not_found":
                self.results.append((name, "no route", "404 resource_not_found"))
            elif status == 405 and code in (None, "method_not_allowed"):
                self.results.append((name, "no route", f"405 {code}"))
            elif body is not None and status in (400, 403, 404, 405, 422):
                details = body.get("error_details")
                self.results.append((name, "refused", f"{status} {code or body.get('error')} {details or ''}"))
            else:
                self.results.append((name, "fails", f"{status} {str(error.detail or body)[:120]}"))
            return
        except Exception as error:  # the client could not parse a 2xx answer, or another failure
            self.results.append((name, "fails", f"{type(error).__name__}: {str(error)[:160]}"))
            return
        self.results.append((name, "works", ""))
        if keep is not None:
            try:
                keep(answer)
            except Exception:
                traceback.print_exc()


def run_calls(census: Census) -> None:
    from lago_python_client import models as m
    from lago_python_client.models.credit_note import Item, Items

    lago, ctx = census.client, census.ctx
    suffix = uuid.uuid4().hex[:6]
    c = census.call
    ctx.update(
        tax=f"vat_{suffix}",
        metric=f"calls_{suffix}",
        plan=f"plan_{suffix}",
        add_on=f"addon_{suffix}",
        coupon=f"coupon_{suffix}",
        customer=f"cust_{suffix}",
        subscription=f"sub_{suffix}",
        wallet_code=f"wallet_{suffix}",
        event=f"tx_{suffix}",
    )
    x = "x1"

    def get(key: str) -> str:
        return ctx.get(key, x)

    # Creates, keeping the ids later calls need.
    c("organizations.update", lambda: lago.organizations.update(m.Organization(default_currency="USD")))
    c("taxes.create", lambda: lago.taxes.create(m.Tax(name="VAT", code=get("tax"), rate=20.0)))
    c(
        "billable_metrics.create",
        lambda: lago.billable_metrics.create(
            m.BillableMetric(name="Calls", code=get("metric"), aggregation_type="count_agg")
        ),
        keep=lambda metric: ctx.update(metric_id=metric.lago_id),
    )
    c(
        "billable_metrics.evaluate_expression",
        lambda: lago.billable_metrics.evaluate_expression(
            m.BillableMetricEvaluateExpression(expression="1 + 1", event=m.BillableMetricEvaluateExpressionEvent())
        ),
    )
    c(
        "plans.create",
        lambda: lago.plans.create(
            m.Plan(
                name="Plan",
                code=get("plan"),
                interval="monthly",
                amount_cents=1000,
                amount_currency="USD",
                pay_in_advance=True,
                charges=m.Charges(
                    __root__=[
                        m.Charge(
                            billable_metric_id=get("metric_id"),
                            charge_model="standard",
                            properties={"amount": "1"},
                        )
                    ]
                ),
            )
        ),
        keep=lambda plan: ctx.update(plan_charge=plan.charges.__root__[0].lago_id) if plan.charges else None,
    )
    c(
        "add_ons.create",
        lambda: lago.add_ons.create(
            m.AddOn(name="Setup", code=get("add_on"), amount_cents=5000, amount_currency="USD")
        ),
    )
    c(
        "coupons.create",
        lambda: lago.coupons.create(
            m.Coupon(
                name="Ten",
                code=get("coupon"),
                coupon_type="fixed_amount",
                amount_cents=1000,
                amount_currency="USD",
                frequency="once",
                expiration="no_expiration",
            )
        ),
    )
    c(
        "customers.create",
        lambda: lago.customers.create(m.Customer(external_id=get("customer"), name="Census", currency="USD")),
    )
    c(
        "subscriptions.create",
        lambda: lago.subscriptions.create(
            m.Subscription(external_customer_id=get("customer"), plan_code=get("plan"), external_id=get("subscription"))
        ),
    )
    c(
        "applied_coupons.create",
        lambda: lago.applied_coupons.create(
            m.AppliedCoupon(external_customer_id=get("customer"), coupon_code=get("coupon"))
        ),
        keep=lambda applied: ctx.update(applied_coupon=applied.lago_id),
    )
    c(
        "events.create",
        lambda: lago.events.create(
            m.Event(transaction_id=get("event"), external_subscription_id=get("subscription"), code=get("metric"))
        ),
    )
    c(
        "events.batch_create",
        lambda: lago.events.batch_create(
            m.BatchEvent(
                events=[
                    m.Event(
                        transaction_id=f"{get('event')}_b",
                        external_subscription_id=get("subscription"),
                        code=get("metric"),
                    )
                ]
            )
        ),
    )
    c(
        "events.estimate_fees",
        lambda: lago.events.estimate_fees(
            m.Event(
                transaction_id=f"{get('event')}_e", external_subscription_id=get("subscription"), code=get("metric")
            )
        ),
    )
    c(
        "invoices.create",
        lambda: lago.invoices.create(
            m.OneOffInvoice(
                external_customer_id=get("customer"),
                currency="USD",
                fees=m.InvoiceFeesList(__root__=[m.InvoiceFee(add_on_code=get("add_on"), units=1)]),
            )
        ),
        keep=lambda invoice: ctx.update(
            invoice=invoice.lago_id, fee=invoice.fees.__root__[0].lago_id if invoice.fees else x
        ),
    )
    c(
        "payments.create",
        lambda: lago.payments.create(m.Payment(invoice_id=get("invoice"), amount_cents=100, reference="census")),
        keep=lambda payment: ctx.update(payment=payment.lago_id),
    )
    c(
        "credit_notes.create",
        lambda: lago.credit_notes.create(
            m.CreditNote(
                invoice_id=get("invoice"),
                reason="other",
                credit_amount_cents=100,
                refund_amount_cents=0,
                items=Items(__root__=[Item(fee_id=get("fee"), amount_cents=100)]),
            )
        ),
        keep=lambda note: ctx.update(credit_note=note.lago_id),
    )
    c(
        "credit_notes.estimate",
        lambda: lago.credit_notes.estimate(
            m.CreditNote(invoice_id=get("invoice"), items=Items(__root__=[Item(fee_id=get("fee"), amount_cents=100)]))
        ),
    )
    c(
        "wallets.create",
        lambda: lago.wallets.create(
            m.Wallet(
                external_customer_id=get("customer"),
                name="Census",
                code=get("wallet_code"),
                rate_amount="1",
                granted_credits="10",
                currency="USD",
            )
        ),
        keep=lambda wallet: ctx.update(wallet=wallet.lago_id),
    )
    c(
        "wallet_transactions.create",
        lambda: lago.wallet_transactions.create(m.WalletTransaction(wallet_id=get("wallet"), granted_credits="1")),
        keep=lambda rows: (
            ctx.update(wallet_transaction=rows["wallet_transactions"][0].lago_id)
            if isinstance(rows, dict)
            else ctx.update(wallet_transaction=rows.__root__[0].lago_id)
        ),
    )
    c(
        "webhook_endpoints.create",
        lambda: lago.webhook_endpoints.create(m.WebhookEndpoint(webhook_url="http://127.0.0.1:9/census")),
        keep=lambda endpoint: ctx.update(webhook_endpoint=endpoint.lago_id),
    )
    c(
        "billing_entities.create",
        lambda: lago.billing_entities.create(m.BillingEntity(code=f"be_{suffix}", name="Entity")),
    )
    c(
        "payment_requests.create",
        lambda: lago.payment_requests.create(
            m.PaymentRequest(
                external_customer_id=get("customer"), email="billing@census.test", lago_invoice_ids=[get("invoice")]
            )
        ),
    )
    c(
        "plan_charges.create",
        lambda: lago.plan_charges.create(get("plan"), m.Charge(charge_model="standard", properties={"amount": "2"})),
    )
    c(
        "plan_fixed_charges.create",
        lambda: (
            lago.plan_fixed_charges.create(get("plan"), m.FixedCharge(add_on_code=get("add_on"), units=1))
            if hasattr(m, "FixedCharge")
            else lago.plan_fixed_charges.create(get("plan"), m.Charge())
        ),
    )
    c(
        "plans.create_charge_filter",
        lambda: lago.plans.create_charge_filter(get("plan"), get("metric"), m.ChargeFilter(values={"a": ["b"]})),
    )
    c(
        "subscriptions.create_alerts",
        lambda: lago.subscriptions.create_alerts(get("subscription"), m.AlertsList(alerts=[])),
    )
    c(
        "subscriptions.create_charge_filter",
        lambda: lago.subscriptions.create_charge_filter(get("subscription"), get("metric"), m.ChargeFilter()),
    )
    c(
        "customers.wallets.create",
        lambda: lago.customers.wallets.create(
            get("customer"), m.Wallet(name="Nested", code=f"n_{suffix}", rate_amount="1", currency="USD")
        ),
    )
    c(
        "customers.wallets.alerts.create",
        lambda: lago.customers.wallets.alerts.create(get("customer"), get("wallet_code"), m.Alert(code="a1")),
    )
    c(
        "customers.wallets.alerts.create_batch",
        lambda: lago.customers.wallets.alerts.create_batch(
            get("customer"), get("wallet_code"), m.AlertsList(alerts=[])
        ),
    )

    # Reads and actions.
    simple = {
        "add_ons": "add_on",
        "billable_metrics": "metric",
        "billing_entities": None,
        "coupons": "coupon",
        "credit_notes": "credit_note",
        "customers": "customer",
        "fees": "fee",
        "invoices": "invoice",
        "payments": "payment",
        "payment_receipts": None,
        "payment_requests": None,
        "plans": "plan",
        "subscriptions": "subscription",
        "taxes": "tax",
        "wallets": "wallet",
        "webhook_endpoints": "webhook_endpoint",
        "order_forms": None,
        "orders": None,
        "quotes": None,
        "quote_versions": None,
        "events": "event",
        "activity_logs": "activity_log",
        "api_logs": "api_log",
    }
    first_ids = {"activity_logs": "activity_id", "api_logs": "request_id"}
    for name, key in simple.items():
        client = getattr(lago, name)
        if hasattr(client, "find_all"):
            id_field = first_ids.get(name)
            keep = (
                (
                    lambda rows, name=name, key=key, id_field=id_field: ctx.update(
                        {key: getattr(rows[name][0], id_field)}
                    )
                )
                if id_field
                else None
            )
            c(f"{name}.find_all", lambda client=client: client.find_all(), keep=keep)
        if hasattr(client, "find"):
            c(f"{name}.find", lambda client=client, key=key: client.find(get(key) if key else x))
    for name in ("gross_revenues", "invoiced_usages", "invoice_collections", "mrrs", "overdue_balances", "usages"):
        c(f"{name}.find_all", lambda name=name: getattr(lago, name).find_all())
    for name in (
        "customer_applied_coupons",
        "customer_credit_notes",
        "customer_invoices",
        "customer_payment_methods",
        "customer_payments",
        "customer_payment_requests",
        "customer_subscriptions",
        "customer_wallets",
    ):
        c(f"{name}.find_all", lambda name=name: getattr(lago, name).find_all(get("customer")))
    c("applied_coupons.find_all", lambda: lago.applied_coupons.find_all())
    sub, cust, plan, metric = get("subscription"), get("customer"), get("plan"), get("metric")
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("customers.current_usage", lambda: lago.customers.current_usage(cust, sub)),
        ("customers.projected_usage", lambda: lago.customers.projected_usage(cust, sub)),
        ("customers.past_usage", lambda: lago.customers.past_usage(cust, sub)),
        ("customers.portal_url", lambda: lago.customers.portal_url(cust)),
        ("customers.checkout_url", lambda: lago.customers.checkout_url(cust)),
        ("customers.wallets.find_all", lambda: lago.customers.wallets.find_all(cust)),
        ("customers.wallets.find", lambda: lago.customers.wallets.find(cust, get("wallet_code"))),
        (
            "customers.wallets.update",
            lambda: lago.customers.wallets.update(cust, get("wallet_code"), m.Wallet(name="N")),
        ),
        ("customers.wallets.alerts.find_all", lambda: lago.customers.wallets.alerts.find_all(cust, get("wallet_code"))),
        ("customers.wallets.alerts.find", lambda: lago.customers.wallets.alerts.find(cust, get("wallet_code"), "a1")),
        (
            "customers.wallets.alerts.update",
            lambda: lago.customers.wallets.alerts.update(cust, get("wallet_code"), "a1", m.Alert(name="A")),
        ),
        (
            "customers.wallets.metadata.replace",
            lambda: lago.customers.wallets.metadata.replace(cust, get("wallet_code"), {"k": "v"}),
        ),
        (
            "customers.wallets.metadata.merge",
            lambda: lago.customers.wallets.metadata.merge(cust, get("wallet_code"), {"k2": "v"}),
        ),
        (
            "customers.wallets.metadata.delete_key",
            lambda: lago.customers.wallets.metadata.delete_key(cust, get("wallet_code"), "k2"),
        ),
        (
            "customers.wallets.metadata.delete_all",
            lambda: lago.customers.wallets.metadata.delete_all(cust, get("wallet_code")),
        ),
        ("customer_payment_methods.set_as_default", lambda: lago.customer_payment_methods.set_as_default(cust, x)),
        ("subscriptions.lifetime_usage", lambda: lago.subscriptions.lifetime_usage(sub)),
        ("subscriptions.update_lifetime_usage", lambda: lago.subscriptions.update_lifetime_usage(sub, 0)),
        ("subscriptions.update", lambda: lago.subscriptions.update(m.Subscription(name="Renamed"), sub)),
        ("subscriptions.find_all_charge_filters", lambda: lago.subscriptions.find_all_charge_filters(sub, metric)),
        ("subscriptions.find_charge_filter", lambda: lago.subscriptions.find_charge_filter(sub, metric, x)),
        (
            "subscriptions.update_charge_filter",
            lambda: lago.subscriptions.update_charge_filter(sub, metric, x, m.ChargeFilter()),
        ),
        ("subscription_charges.find_all", lambda: lago.subscription_charges.find_all(sub)),
        ("subscription_charges.find", lambda: lago.subscription_charges.find(sub, metric)),
        ("subscription_charges.update", lambda: lago.subscription_charges.update(sub, metric, m.Charge())),
        ("subscription_fixed_charges.find_all", lambda: lago.subscription_fixed_charges.find_all(sub)),
        ("subscription_fixed_charges.find", lambda: lago.subscription_fixed_charges.find(sub, x)),
        ("subscription_fixed_charges.update", lambda: lago.subscription_fixed_charges.update(sub, x, m.Charge())),
        ("plans.update", lambda: lago.plans.update(m.Plan(name="Renamed"), plan)),
        ("plans.replace_metadata", lambda: lago.plans.replace_metadata(plan, {"k": "v"})),
        ("plans.merge_metadata", lambda: lago.plans.merge_metadata(plan, {"k2": "v"})),
        ("plans.delete_metadata_key", lambda: lago.plans.delete_metadata_key(plan, "k2")),
        ("plans.delete_all_metadata", lambda: lago.plans.delete_all_metadata(plan)),
        ("plans.find_all_charge_filters", lambda: lago.plans.find_all_charge_filters(plan, metric)),
        ("plans.find_charge_filter", lambda: lago.plans.find_charge_filter(plan, metric, x)),
        ("plans.update_charge_filter", lambda: lago.plans.update_charge_filter(plan, metric, x, m.ChargeFilter())),
        ("plan_charges.find_all", lambda: lago.plan_charges.find_all(plan)),
        ("plan_charges.find", lambda: lago.plan_charges.find(plan, metric)),
        ("plan_charges.update", lambda: lago.plan_charges.update(plan, metric, m.Charge())),
        ("plan_fixed_charges.find_all", lambda: lago.plan_fixed_charges.find_all(plan)),
        ("plan_fixed_charges.find", lambda: lago.plan_fixed_charges.find(plan, x)),
        ("plan_fixed_charges.update", lambda: lago.plan_fixed_charges.update(plan, x, m.Charge())),
        ("taxes.update", lambda: lago.taxes.update(m.Tax(rate=19.6), get("tax"))),
        ("add_ons.update", lambda: lago.add_ons.update(m.AddOn(name="Set up"), get("add_on"))),
        ("coupons.update", lambda: lago.coupons.update(m.Coupon(name="Ten off"), get("coupon"))),
        ("billable_metrics.update", lambda: lago.billable_metrics.update(m.BillableMetric(name="Calls!"), metric)),
        ("billing_entities.update", lambda: lago.billing_entities.update(m.BillingEntity(code=x, name="E"), x)),
        ("invoices.update", lambda: lago.invoices.update(m.Invoice(payment_status="pending"), get("invoice"))),
        ("invoices.download", lambda: lago.invoices.download(get("invoice"))),
        ("invoices.refresh", lambda: lago.invoices.refresh(get("invoice"))),
        ("invoices.finalize", lambda: lago.invoices.finalize(get("invoice"))),
        ("invoices.retry", lambda: lago.invoices.retry(get("invoice"))),
        ("invoices.retry_payment", lambda: lago.invoices.retry_payment(get("invoice"))),
        ("invoices.payment_url", lambda: lago.invoices.payment_url(get("invoice"))),
        ("invoices.lose_dispute", lambda: lago.invoices.lose_dispute(get("invoice"))),
        (
            "invoices.preview",
            lambda: (
                lago.invoices.preview(m.InvoicePreview(customer=m.Customer(external_id=cust), plan_code=plan))
                if hasattr(m, "InvoicePreview")
                else lago.invoices.preview(m.Customer(external_id=cust))
            ),
        ),
        ("fees.update", lambda: lago.fees.update(m.Fee(payment_status="succeeded"), get("fee"))),
        (
            "credit_notes.update",
            lambda: (
                lago.credit_notes.update(m.CreditNoteUpdate(refund_status="pending"), get("credit_note"))
                if hasattr(m, "CreditNoteUpdate")
                else lago.credit_notes.update(m.CreditNote(), get("credit_note"))
            ),
        ),
        ("credit_notes.download", lambda: lago.credit_notes.download(get("credit_note"))),
        ("credit_notes.replace_metadata", lambda: lago.credit_notes.replace_metadata(get("credit_note"), {"k": "v"})),
        ("credit_notes.merge_metadata", lambda: lago.credit_notes.merge_metadata(get("credit_note"), {"k2": "v"})),
        ("credit_notes.delete_metadata_key", lambda: lago.credit_notes.delete_metadata_key(get("credit_note"), "k2")),
        ("credit_notes.delete_all_metadata", lambda: lago.credit_notes.delete_all_metadata(get("credit_note"))),
        ("wallets.update", lambda: lago.wallets.update(m.Wallet(name="W"), get("wallet"))),
        ("wallets.replace_metadata", lambda: lago.wallets.replace_metadata(get("wallet"), {"k": "v"})),
        ("wallets.merge_metadata", lambda: lago.wallets.merge_metadata(get("wallet"), {"k2": "v"})),
        ("wallets.delete_metadata_key", lambda: lago.wallets.delete_metadata_key(get("wallet"), "k2")),
        ("wallets.delete_all_metadata", lambda: lago.wallets.delete_all_metadata(get("wallet"))),
        ("wallet_transactions.find_all", lambda: lago.wallet_transactions.find_all(get("wallet"))),
        ("wallet_transactions.consumptions", lambda: lago.wallet_transactions.consumptions(get("wallet_transaction"))),
        ("wallet_transactions.fundings", lambda: lago.wallet_transactions.fundings(get("wallet_transaction"))),
        ("wallet_transactions.payment_url", lambda: lago.wallet_transactions.payment_url(get("wallet_transaction"))),
        (
            "webhook_endpoints.update",
            lambda: lago.webhook_endpoints.update(m.WebhookEndpoint(signature_algo="hmac"), get("webhook_endpoint")),
        ),
        ("webhooks.public_key", lambda: lago.webhooks.public_key()),
        ("quotes.versions", lambda: lago.quotes.versions(x)),
        ("quote_versions.approve", lambda: lago.quote_versions.approve(x, m.Customer(external_id=x))),
        ("quote_versions.clone", lambda: lago.quote_versions.clone(x)),
        ("quote_versions.void", lambda: lago.quote_versions.void(x)),
        ("order_forms.mark_as_signed", lambda: lago.order_forms.mark_as_signed(x, m.Customer(external_id=x))),
        ("order_forms.void", lambda: lago.order_forms.void(x)),
        ("orders.execute", lambda: lago.orders.execute(x, m.Customer(external_id=x))),
        ("credit_notes.void", lambda: lago.credit_notes.void(get("credit_note"))),
        ("invoices.void", lambda: lago.invoices.void(get("invoice"))),
        ("invoices.void_invoice", lambda: lago.invoices.void_invoice(get("invoice"))),
        # Destroys, last.
        ("subscriptions.delete_alerts", lambda: lago.subscriptions.delete_alerts(sub)),
        ("subscriptions.destroy_charge_filter", lambda: lago.subscriptions.destroy_charge_filter(sub, metric, x)),
        (
            "customers.wallets.alerts.destroy",
            lambda: lago.customers.wallets.alerts.destroy(cust, get("wallet_code"), "a1"),
        ),
        (
            "customers.wallets.alerts.destroy_all",
            lambda: lago.customers.wallets.alerts.destroy_all(cust, get("wallet_code")),
        ),
        ("customers.wallets.destroy", lambda: lago.customers.wallets.destroy(cust, f"n_{suffix}")),
        ("customer_payment_methods.destroy", lambda: lago.customer_payment_methods.destroy(cust, x)),
        ("plans.destroy_charge_filter", lambda: lago.plans.destroy_charge_filter(plan, metric, x)),
        ("plan_charges.destroy", lambda: lago.plan_charges.destroy(plan, metric)),
        ("plan_fixed_charges.destroy", lambda: lago.plan_fixed_charges.destroy(plan, x)),
        ("applied_coupons.destroy", lambda: lago.applied_coupons.destroy(cust, get("applied_coupon"))),
        ("fees.destroy", lambda: lago.fees.destroy(get("fee"))),
        ("invoices.destroy", lambda: lago.invoices.destroy(get("invoice"))),
        ("wallets.destroy", lambda: lago.wallets.destroy(get("wallet"))),
        ("webhook_endpoints.destroy", lambda: lago.webhook_endpoints.destroy(get("webhook_endpoint"))),
        ("subscriptions.destroy", lambda: lago.subscriptions.destroy(sub)),
        ("coupons.destroy", lambda: lago.coupons.destroy(get("coupon"))),
        ("add_ons.destroy", lambda: lago.add_ons.destroy(get("add_on"))),
        ("plans.destroy", lambda: lago.plans.destroy(plan)),
        ("billable_metrics.destroy", lambda: lago.billable_metrics.destroy(metric)),
        ("taxes.destroy", lambda: lago.taxes.destroy(get("tax"))),
        ("customers.destroy", lambda: lago.customers.destroy(cust)),
    ]
    for name, function in calls:
        c(name, function)


def public_methods(client: Any) -> list[str]:
    """Every public method of the client's clients, nested ones included (customers.wallets...)."""
    from lago_python_client.client import Client

    found = []

    def walk(prefix: str, obj: Any) -> None:
        target = object.__getattribute__(obj, "_obj") if hasattr(obj, "_obj") else obj
        cls = type(target)
        for name in dir(cls):
            if name.startswith("_") or name == "api_resource":
                continue
            attribute = getattr(cls, name)
            if inspect.isfunction(attribute):
                found.append(f"{prefix}.{name}")
            elif (
                not isinstance(attribute, (str, type))
                and hasattr(attribute, "__get__")
                and not isinstance(attribute, property)
            ):
                child = getattr(target, name)
                child = child() if callable(child) and not hasattr(child, "base_url") else child
                if hasattr(child, "base_url"):
                    walk(f"{prefix}.{name}", child)

    skip = {"base_api_url", "base_ingest_api_url", "BASE_URL", "BASE_INGEST_URL", "API_PATH"}
    for name in vars(Client):
        if name.startswith("_") or name in skip:
            continue
        walk(name, getattr(client, name)())
    return sorted(found)


# --- a server of its own ----------------------------------------------------------------------


def serve() -> tuple[subprocess.Popen, str, str]:
    python = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    made = subprocess.run(
        [python, "manage.py", "create_api_key", "--name", "census"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    key = next(word for word in made.stdout.split() if word.startswith("tg_"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The census registers a webhook endpoint on loopback (nothing listens there).
    env = {**os.environ, "TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS": "true"}
    server = subprocess.Popen(
        [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    return server, url, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--api-key")
    parser.add_argument("--serve", action="store_true", help="start a server of its own on DATABASE_URL")
    parser.add_argument("--verbose", action="store_true", help="print every call")
    args = parser.parse_args()
    server = None
    if args.serve:
        server, url, key = serve()
    elif args.url and args.api_key:
        url, key = args.url, args.api_key
    else:
        parser.error("--serve, or --url and --api-key")
    try:
        from lago_python_client.client import Client

        client = Client(api_key=key, api_url=url, max_retries=0)
        census = Census(client)
        run_calls(census)
        methods = public_methods(client)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    total, routed, missing = routed_routes()
    classes = Counter(kind for _, kind, _ in census.results)
    uncalled = [name for name in methods if name not in census.called]
    print(f"Lago api/v1 routes: {total}; routed by Tollgate: {routed}; missing: {total - routed}")
    print(
        f"Client calls: {len(census.results)} ({len(methods)} public methods, {len(uncalled)} not called); "
        f"works {classes['works']}, refused (route there, Lago error) {classes['refused']}, "
        f"no route {classes['no route']}, fails {classes['fails']}"
    )
    for name, kind, detail in census.results:
        if args.verbose or kind == "fails":
            print(f"  {kind:<8} {name:<48} {detail}")
    if uncalled:
        print("  not called:", ", ".join(uncalled))
    if args.verbose:
        print("Missing routes:")
        for route in missing:
            print(f"  {route}")


if __name__ == "__main__":
    main()
