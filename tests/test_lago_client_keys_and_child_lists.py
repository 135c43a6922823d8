"""lago-python-client 1.55.0 against a live Tollgate: the customer and subscription keys Lago
answers (taxes, billing_entity_code, on_termination_*, purchase_order_number, ...), DELETE
/subscriptions with its termination options, and a customer's child lists
(config/routes.rb: `scope module: :customers` invoices, subscriptions, applied_coupons, wallets,
credit_notes, payments)."""

from __future__ import annotations

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.applied_coupon import AppliedCoupon, AppliedCouponResponse
from lago_python_client.models.customer import Customer
from lago_python_client.models.invoice import InvoiceResponse
from lago_python_client.models.subscription import Subscription, SubscriptionResponse
from lago_python_client.services.response import prepare_index_response

from customers.models import Organization
from invoicing import runs
from plans.models import Subscription as SubscriptionModel
from tests.factories.customers import make_api_key
from tests.factories.plans import make_coupon, make_plan, make_tax

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def key():
    return make_api_key().raw


@pytest.fixture
def lago(live_server, key) -> Client:
    return Client(api_key=key, api_url=live_server.url)


def test_customer_taxes_and_billing_entity_code(lago):
    Organization.objects.filter(pk=Organization.current().pk).update(name="Acme Billing Co.")
    make_tax(code="vat_fr", rate="20")
    make_tax(code="eco", rate="1.5")

    created = lago.customers.create(
        Customer(external_id="c1", name="C1", tax_codes=["vat_fr", "eco"], billing_entity_code="acme_billing_co")
    )

    # Lago's default billing entity code: the organization's name parameterized with "_".
    assert created.billing_entity_code == "acme_billing_co"
    assert [(tax.code, tax.rate) for tax in created.taxes.__root__] == [("eco", 1.5), ("vat_fr", 20.0)]
    assert lago.customers.find("c1").taxes.__root__[1].code == "vat_fr"
    listed = lago.customers.find_all()["customers"][0]
    assert [tax.code for tax in listed.taxes.__root__] == ["eco", "vat_fr"]
    # Neutral values of keys Tollgate does not keep (README).
    assert (listed.customer_type, listed.logo_url) == (None, None)

    with pytest.raises(LagoApiError) as refused:
        lago.customers.create(Customer(external_id="c2", billing_entity_code="other"))
    assert refused.value.status_code == 404
    assert refused.value.response["code"] == "billing_entity_not_found"


def test_subscription_keys_and_termination_options_through_the_client(lago):
    make_plan(code="advance", amount_cents=3100, pay_in_advance=True)
    lago.customers.create(Customer(external_id="c1", name="C1"))

    created = lago.subscriptions.create(
        Subscription(external_customer_id="c1", plan_code="advance", external_id="s1", purchase_order_number="PO-7")
    )

    assert (created.purchase_order_number, created.on_termination_invoice) == ("PO-7", "generate")
    assert created.on_termination_credit_note == "credit"  # a plan paid in advance: Lago's default
    assert created.activated_at == created.started_at
    assert created.consolidate_invoice is True
    assert created.payment_method.payment_method_type == "provider"

    updated = lago.subscriptions.update(Subscription(purchase_order_number="PO-8"), "s1")
    assert updated.purchase_order_number == "PO-8"

    terminated = lago.subscriptions.destroy(
        "s1", options={"on_termination_invoice": "skip", "on_termination_credit_note": "skip"}
    )

    assert terminated.status == "terminated"
    assert (terminated.on_termination_invoice, terminated.on_termination_credit_note) == ("skip", "skip")
    stored = SubscriptionModel.objects.get(external_id="s1")
    assert (stored.on_termination_invoice, stored.on_termination_credit_note) == ("skip", "skip")

    lago.subscriptions.create(Subscription(external_customer_id="c1", plan_code="advance", external_id="s2"))
    with pytest.raises(LagoApiError) as refused:
        lago.subscriptions.destroy("s2", options={"on_termination_invoice": "later"})
    assert refused.value.status_code == 422
    assert refused.value.response["error_details"] == {"on_termination_invoice": ["value_is_invalid"]}


def _child_list(live_server, key, path, resource, model):
    """GET with the key, parsed by the client's own index parser: lago-python-client 1.55.0's
    FindAllChildrenCommandMixin sends these requests without the API key (so they answer 401
    against Lago as here), the reason they are not called through it."""
    response = httpx.get(f"{live_server.url}/api/v1/{path}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return prepare_index_response(api_resource=resource, response_model=model, data=response.json())


def test_a_customers_child_lists_answer_lagos_shapes(live_server, key, lago):
    make_plan(code="advance", amount_cents=3100, pay_in_advance=True)
    for external_id in ("c1", "c2"):
        lago.customers.create(Customer(external_id=external_id, name=external_id))
        # Anniversary: the first period is a whole month whatever today is (no calendar proration).
        lago.subscriptions.create(
            Subscription(
                external_customer_id=external_id,
                plan_code="advance",
                external_id=f"s_{external_id}",
                billing_time="anniversary",
            )
        )
    for subscription in SubscriptionModel.objects.all():
        runs.bill_starting(subscription_id=subscription.pk, actor="test")
    coupon = make_coupon(code="ten", amount_cents=1000)
    lago.applied_coupons.create(AppliedCoupon(external_customer_id="c1", coupon_code=coupon.code))

    invoices = _child_list(live_server, key, "customers/c1/invoices", "invoices", InvoiceResponse)
    assert [(i.customer.external_id, i.total_amount_cents) for i in invoices["invoices"]] == [("c1", 3100)]
    assert invoices["meta"]["total_count"] == 1
    subscriptions = _child_list(live_server, key, "customers/c1/subscriptions", "subscriptions", SubscriptionResponse)
    assert [s.external_id for s in subscriptions["subscriptions"]] == ["s_c1"]
    coupons = _child_list(live_server, key, "customers/c1/applied_coupons", "applied_coupons", AppliedCouponResponse)
    assert [(c.coupon_code, c.external_customer_id) for c in coupons["applied_coupons"]] == [("ten", "c1")]
    assert (
        _child_list(live_server, key, "customers/c2/applied_coupons", "applied_coupons", AppliedCouponResponse)[
            "applied_coupons"
        ]
        == []
    )
    # The same filters as the top-level lists.
    assert (
        _child_list(live_server, key, "customers/c1/invoices?status=draft", "invoices", InvoiceResponse)["invoices"]
        == []
    )

    for path in ("invoices", "subscriptions", "applied_coupons", "wallets", "credit_notes", "payments"):
        response = httpx.get(
            f"{live_server.url}/api/v1/customers/nobody/{path}", headers={"Authorization": f"Bearer {key}"}
        )
        assert (response.status_code, response.json()["code"]) == (404, "customer_not_found"), path
    # Through the client (no key sent, as against Lago): 401, not a 404 nor a crash.
    with pytest.raises(LagoApiError) as unauthorized:
        lago.customer_invoices.find_all("c1")
    assert unauthorized.value.status_code == 401
