"""Wallet routes the client library does not cover, in Lago's shapes and codes."""

from __future__ import annotations

import pytest

from tests.factories.customers import make_customer
from tests.factories.wallets import make_wallet

pytestmark = pytest.mark.django_db


def test_one_transaction_and_a_filtered_list(api):
    wallet = make_wallet(customer=make_customer(external_id="api_tx", currency="USD"), granted_credits="3")
    listed = api.get(f"/api/v1/wallets/{wallet.pk}/wallet_transactions", {"transaction_status": "granted"}).json()
    (row,) = listed["wallet_transactions"]
    assert (row["credit_amount"], row["amount"], row["remaining_amount_cents"], row["status"]) == (
        "3",
        "3",
        300,
        "settled",
    )
    one = api.get(f"/api/v1/wallet_transactions/{row['lago_id']}").json()["wallet_transaction"]
    assert one["lago_wallet_id"] == str(wallet.pk)
    assert api.get("/api/v1/wallet_transactions/nope").json()["code"] == "wallet_transaction_not_found"


def test_the_seventh_wallet_and_a_terminated_wallet_answer_lagos_codes(api):
    customer = make_customer(external_id="api_limit", currency="USD")
    for _ in range(6):
        make_wallet(customer=customer)
    refused = api.post("/api/v1/wallets", {"wallet": {"external_customer_id": "api_limit", "rate_amount": "1"}})
    assert refused.status_code == 422
    assert refused.json()["error_details"] == {"customer": ["wallet_limit_reached"]}
    wallet = customer.wallets.first()
    api.delete(f"/api/v1/wallets/{wallet.pk}")
    top_up = api.post(
        "/api/v1/wallet_transactions", {"wallet_transaction": {"wallet_id": str(wallet.pk), "granted_credits": "1"}}
    )
    assert (top_up.status_code, top_up.json()["error_details"]) == (422, {"wallet": ["wallet_is_terminated"]})


def test_invoices_answer_what_wallets_paid(api):
    from invoicing.models import Invoice
    from tests.factories.invoicing import bill, only_invoice, subscribe, utc
    from tests.factories.plans import make_plan

    customer = make_customer(external_id="api_inv", currency="USD")
    make_wallet(customer=customer, granted_credits="5")
    subscribe(plan=make_plan(code="api_inv", amount_cents=2000), customer=customer, external_id="sub_api_inv")
    invoice: Invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    answer = api.get(f"/api/v1/invoices/{invoice.pk}").json()["invoice"]
    assert (answer["prepaid_credit_amount_cents"], answer["total_amount_cents"]) == (500, 1500)


def test_wallet_metadata_routes_answer_as_they_always_have(api):
    # Wallets keep their own checks (any keys, values as text, `invalid_type`), on the shared
    # metadata views (billing_project/api/metadata.py); these answers predate the move.
    wallet = make_wallet(customer=make_customer(external_id="api_meta", currency="USD"))
    base = f"/api/v1/wallets/{wallet.pk}/metadata"
    assert api.post(base, {"metadata": {"a": 1, "b": None}}).json() == {"metadata": {"a": "1", "b": None}}
    assert api.patch(base, {"metadata": {"c": "x"}}).json() == {"metadata": {"a": "1", "b": None, "c": "x"}}
    assert api.delete(f"{base}/a").json() == {"metadata": {"b": None, "c": "x"}}
    assert api.delete(f"{base}/missing").json() == {"metadata": {"b": None, "c": "x"}}
    many = {f"k{i}": "v" for i in range(60)}  # more than the 50 keys plans allow
    assert len(api.post(base, {"metadata": many}).json()["metadata"]) == 60
    refused = api.post(base, {"metadata": ["not", "an", "object"]})
    assert (refused.status_code, refused.json()["status"]) == (400, 400)
    assert api.delete(base).json() == {"metadata": None}
    by_code = f"/api/v1/customers/api_meta/wallets/{wallet.code}/metadata"
    assert api.post(by_code, {"metadata": {"k": "v"}}).json() == {"metadata": {"k": "v"}}
    # PUT merges as PATCH does (Lago routes both to the metadata update).
    assert api.put(by_code, {"metadata": {"m": "n"}}).json() == {"metadata": {"k": "v", "m": "n"}}
    assert api.put(by_code, {"metadata": {"m": None}}).json() == {"metadata": {"k": "v", "m": None}}
    assert api.delete(f"{by_code}/m").json() == {"metadata": {"k": "v"}}
    assert api.delete(f"{by_code}/k").json() == {"metadata": None}
    assert api.delete(f"/api/v1/wallets/{wallet.pk}x/metadata").json()["code"] == "wallet_not_found"
