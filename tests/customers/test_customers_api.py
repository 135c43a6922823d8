"""Customers API: Lago's shapes, upsert semantics, soft delete, every error shape."""

from __future__ import annotations

import pytest

from customers.models import Customer
from customers.signals import customer_deleted, customer_saved
from tests.factories.customers import make_customer

pytestmark = pytest.mark.django_db

CUSTOMER_KEYS = {
    "lago_id",
    "sequential_id",
    "slug",
    "external_id",
    "account_type",
    "customer_type",
    "name",
    "firstname",
    "lastname",
    "legal_name",
    "legal_number",
    "tax_identification_number",
    "email",
    "phone",
    "url",
    "logo_url",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zipcode",
    "country",
    "currency",
    "timezone",
    "applicable_timezone",
    "net_payment_term",
    "finalize_zero_amount_invoice",
    "skip_invoice_custom_sections",
    "exclude_from_dunning_campaign",
    "created_at",
    "updated_at",
    "billing_configuration",
    "shipping_address",
    "metadata",
    "integration_customers",
}


def post(api, **customer):
    return api.post("/api/v1/customers", {"customer": customer}, format="json")


def test_create_answers_lagos_customer_object(api, organization):
    response = post(
        api,
        external_id="acme",
        name="Acme Corp",
        firstname="Wile",
        lastname="Coyote",
        legal_name="Acme Corporation Inc.",
        legal_number="US-123",
        tax_identification_number="EIN-42",
        email="billing@acme.test, ceo@acme.test",
        phone="+1 555 0100",
        url="https://acme.test",
        address_line1="1 Road Runner Way",
        address_line2="Suite 2",
        city="Phoenix",
        state="AZ",
        zipcode=85001,
        country="us",
        currency="usd",
        timezone="America/Phoenix",
        net_payment_term=30,
        billing_configuration={"invoice_grace_period": 3, "payment_provider": "manual"},
        metadata=[{"key": "crm", "value": "hubspot-1", "display_in_invoice": True}],
    )

    assert response.status_code == 200
    body = response.json()["customer"]
    assert set(body) == CUSTOMER_KEYS
    customer = Customer.live.get(external_id="acme")
    assert body["lago_id"] == str(customer.pk)
    assert body["sequential_id"] == customer.sequential_id is not None
    assert body["slug"] == f"TOL-{customer.sequential_id:03d}"
    assert (body["name"], body["firstname"], body["lastname"]) == ("Acme Corp", "Wile", "Coyote")
    assert body["email"] == "billing@acme.test, ceo@acme.test"
    assert body["zipcode"] == "85001"  # a JSON number is kept as text
    assert (body["country"], body["currency"]) == ("US", "USD")  # stored upper case
    assert (body["timezone"], body["applicable_timezone"]) == ("America/Phoenix", "America/Phoenix")
    assert body["net_payment_term"] == 30
    assert body["billing_configuration"]["invoice_grace_period"] == 3
    assert body["billing_configuration"]["payment_provider"] == "manual"
    assert body["billing_configuration"]["provider_customer_id"] is None
    [pair] = body["metadata"]
    assert (pair["key"], pair["value"], pair["display_in_invoice"]) == ("crm", "hubspot-1", True)
    assert pair["lago_id"] and pair["created_at"]
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


def test_minimal_customer_uses_the_organizations_timezone(api, organization):
    organization.timezone = "Europe/Paris"
    organization.save()

    body = post(api, external_id="min").json()["customer"]

    assert body["timezone"] is None
    assert body["applicable_timezone"] == "Europe/Paris"
    assert body["name"] is None and body["currency"] is None and body["net_payment_term"] is None
    assert body["billing_configuration"]["payment_provider"] is None
    assert body["metadata"] == []


def test_upsert_updates_only_the_fields_sent_and_null_clears(api, organization):
    first = post(api, external_id="acme", name="Acme", city="Lyon", country="FR", net_payment_term=15).json()
    second = post(api, external_id="acme", city=None, net_payment_term=None, email="ap@acme.test").json()

    assert second["customer"]["lago_id"] == first["customer"]["lago_id"]
    assert second["customer"]["sequential_id"] == first["customer"]["sequential_id"]
    assert second["customer"]["name"] == "Acme"  # absent: kept
    assert second["customer"]["country"] == "FR"
    assert second["customer"]["city"] is None  # explicit null: cleared
    assert second["customer"]["net_payment_term"] is None
    assert second["customer"]["email"] == "ap@acme.test"
    assert Customer.objects.filter(external_id="acme").count() == 1


def test_sequential_ids_count_up_per_new_customer(api, organization):
    ids = [post(api, external_id=f"c{n}").json()["customer"]["sequential_id"] for n in range(3)]
    post(api, external_id="c1", name="update keeps its number")

    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    assert Customer.live.get(external_id="c1").sequential_id == ids[1]


def test_metadata_replaces_the_list_and_keeps_ids_of_known_keys(api, organization):
    first = post(
        api,
        external_id="m",
        metadata=[{"key": "a", "value": "1", "display_in_invoice": False}, {"key": "b", "value": "2"}],
    ).json()["customer"]["metadata"]
    a_id = next(pair["lago_id"] for pair in first if pair["key"] == "a")

    second = post(api, external_id="m", metadata=[{"key": "a", "value": "one"}, {"key": "c", "value": 3}]).json()
    third = post(api, external_id="m", name="no metadata key: list kept").json()

    pairs = {pair["key"]: pair for pair in second["customer"]["metadata"]}
    assert set(pairs) == {"a", "c"}
    assert pairs["a"]["lago_id"] == a_id and pairs["a"]["value"] == "one"
    assert pairs["c"]["value"] == "3"
    assert third["customer"]["metadata"] == second["customer"]["metadata"]


@pytest.mark.parametrize(
    ("customer", "details"),
    [
        ({}, {"external_id": ["value_is_mandatory"]}),
        ({"external_id": "  "}, {"external_id": ["value_is_mandatory"]}),
        ({"external_id": ["x"]}, {"external_id": ["value_is_invalid"]}),
        ({"external_id": "x" * 256}, {"external_id": ["value_is_invalid"]}),
        ({"external_id": "e", "name": 12}, {"name": ["value_is_invalid"]}),
        ({"external_id": "e", "name": "n" * 256}, {"name": ["value_is_invalid"]}),
        ({"external_id": "e", "country": "XX"}, {"country": ["country_code_invalid"]}),
        ({"external_id": "e", "country": "FRA"}, {"country": ["country_code_invalid"]}),
        ({"external_id": "e", "currency": "EURO"}, {"currency": ["value_is_invalid"]}),
        ({"external_id": "e", "currency": "XYZ"}, {"currency": ["value_is_invalid"]}),
        ({"external_id": "e", "timezone": "Mars/Olympus"}, {"timezone": ["invalid_timezone"]}),
        ({"external_id": "e", "email": "not-an-email"}, {"email": ["invalid_email_format"]}),
        ({"external_id": "e", "email": "a@b.test, nope"}, {"email": ["invalid_email_format"]}),
        ({"external_id": "e", "net_payment_term": -1}, {"net_payment_term": ["value_is_invalid"]}),
        ({"external_id": "e", "net_payment_term": "soon"}, {"net_payment_term": ["value_is_invalid"]}),
        ({"external_id": "e", "net_payment_term": True}, {"net_payment_term": ["value_is_invalid"]}),
        ({"external_id": "e", "billing_configuration": "stripe"}, {"billing_configuration": ["value_is_invalid"]}),
        (
            {"external_id": "e", "billing_configuration": {"payment_provider": "gocardless"}},
            {"payment_provider": ["value_is_invalid"]},
        ),
        (
            {"external_id": "e", "billing_configuration": {"invoice_grace_period": -2}},
            {"invoice_grace_period": ["value_is_invalid"]},
        ),
        (
            {"external_id": "e", "billing_configuration": {"sync_with_provider": "yes"}},
            {"sync_with_provider": ["value_is_invalid"]},
        ),
        ({"external_id": "e", "tax_codes": "vat"}, {"tax_codes": ["value_is_invalid"]}),
        ({"external_id": "e", "metadata": {"key": "a"}}, {"metadata": ["value_is_invalid"]}),
        ({"external_id": "e", "metadata": [{"key": "a"}]}, {"metadata": ["value_is_mandatory"]}),
        ({"external_id": "e", "metadata": [{"key": "k" * 21, "value": "v"}]}, {"metadata": ["value_is_invalid"]}),
        (
            {"external_id": "e", "metadata": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]},
            {"metadata": ["value_already_exist"]},
        ),
        (
            {"external_id": "e", "metadata": [{"key": f"k{n}", "value": "v"} for n in range(6)]},
            {"metadata": ["invalid_count"]},
        ),
    ],
)
def test_invalid_customer_is_422_with_lagos_codes_and_writes_nothing(api, organization, customer, details):
    response = post(api, **customer)

    assert response.status_code == 422
    assert response.json() == {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": details,
    }
    assert not Customer.objects.exists()


def test_invalid_update_leaves_the_customer_unchanged(api, organization):
    post(api, external_id="acme", name="Acme", country="FR")

    response = post(api, external_id="acme", name="Renamed", country="ZZ")

    assert response.status_code == 422
    customer = Customer.live.get(external_id="acme")
    assert (customer.name, customer.country) == ("Acme", "FR")


def test_currency_is_fixed_once_the_customer_has_subscriptions(api, organization):
    from tests.factories.plans import make_plan, make_subscription

    customer = make_customer(external_id="acme", currency="USD")
    make_subscription(customer=customer, plan=make_plan(code="p", amount_currency="USD"))

    refused = post(api, external_id="acme", currency="EUR")
    same = post(api, external_id="acme", currency="USD", name="same currency is fine")

    assert refused.status_code == 422
    assert refused.json()["error_details"] == {"currency": ["currencies_does_not_match"]}
    assert same.status_code == 200


def test_currency_may_change_while_nothing_was_billed(api, organization):
    post(api, external_id="acme", currency="USD")

    assert post(api, external_id="acme", currency="EUR").json()["customer"]["currency"] == "EUR"


def test_malformed_json_and_missing_root_are_400(api):
    malformed = api.post("/api/v1/customers", data='{"customer": {', content_type="application/json")
    no_root = api.post("/api/v1/customers", {"external_id": "x"}, format="json")
    not_object = api.post("/api/v1/customers", {"customer": "x"}, format="json")

    assert malformed.status_code == 400
    assert malformed.json()["status"] == 400
    assert malformed.json()["error"].startswith("BadRequest: ")
    assert set(malformed.json()) == {"status", "error"}
    assert no_root.json() == {"status": 400, "error": "BadRequest: param is missing or the value is empty: customer"}
    assert not_object.status_code == 400


def test_find_and_404(api, organization):
    post(api, external_id="acme", name="Acme")

    found = api.get("/api/v1/customers/acme")
    missing = api.get("/api/v1/customers/nobody")

    assert found.status_code == 200 and found.json()["customer"]["name"] == "Acme"
    assert missing.status_code == 404
    assert missing.json() == {"status": 404, "error": "Not Found", "code": "customer_not_found"}


def test_list_is_paginated_newest_first_and_filtered(api, organization):
    for n, country in enumerate(["FR", "DE", "FR"]):
        post(api, external_id=f"c{n}", name=f"Customer {n}", country=country, currency="EUR" if n else "USD")
    post(api, external_id="gone")
    api.delete("/api/v1/customers/gone")

    page = api.get("/api/v1/customers", {"per_page": 2}).json()
    second = api.get("/api/v1/customers", {"per_page": 2, "page": 2}).json()
    french = api.get("/api/v1/customers?countries[]=FR").json()
    euro = api.get("/api/v1/customers?currencies[]=EUR&countries[]=DE").json()
    searched = api.get("/api/v1/customers", {"search_term": "customer 1"}).json()

    assert [c["external_id"] for c in page["customers"]] == ["c2", "c1"]
    assert page["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 2, "total_count": 3}
    assert [c["external_id"] for c in second["customers"]] == ["c0"]
    assert second["meta"]["prev_page"] == 1 and second["meta"]["next_page"] is None
    assert [c["external_id"] for c in french["customers"]] == ["c2", "c0"]
    assert [c["external_id"] for c in euro["customers"]] == ["c1"]
    assert [c["external_id"] for c in searched["customers"]] == ["c1"]


def test_list_per_page_is_capped_at_100(api, organization):
    assert api.get("/api/v1/customers", {"per_page": 1000}).json()["meta"]["total_pages"] == 0
    make_customer(external_id="one")
    meta = api.get("/api/v1/customers", {"per_page": 1000, "page": "x"}).json()["meta"]
    assert meta == {"current_page": 1, "next_page": None, "prev_page": None, "total_pages": 1, "total_count": 1}


def test_delete_is_soft_answers_the_customer_and_frees_the_external_id(api, organization):
    created = post(api, external_id="acme", name="Old Acme").json()["customer"]

    deleted = api.delete("/api/v1/customers/acme")
    again = api.delete("/api/v1/customers/acme")
    recreated = post(api, external_id="acme", name="New Acme").json()["customer"]

    assert deleted.status_code == 200
    assert deleted.json()["customer"]["lago_id"] == created["lago_id"]
    assert again.status_code == 404 and again.json()["code"] == "customer_not_found"
    assert api.get("/api/v1/customers/acme").json()["customer"]["lago_id"] == recreated["lago_id"]
    assert recreated["lago_id"] != created["lago_id"]
    assert recreated["name"] == "New Acme" and recreated["metadata"] == []
    old = Customer.objects.get(pk=created["lago_id"])
    assert old.deleted_at is not None and old.name == "Old Acme"
    assert Customer.objects.filter(external_id="acme").count() == 2


def test_customer_saved_carries_what_payments_and_plans_read(api, organization, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    customer_saved.connect(receiver, dispatch_uid="test-receiver")
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            post(
                api,
                external_id="acme",
                billing_configuration={"payment_provider": "manual", "sync_with_provider": False},
                tax_codes=["vat_20"],
            )
        with django_capture_on_commit_callbacks(execute=True):
            post(api, external_id="acme", name="again")
    finally:
        customer_saved.disconnect(dispatch_uid="test-receiver")

    assert callbacks  # sent after commit, not during the transaction
    customer = Customer.live.get(external_id="acme")
    assert [{k: v for k, v in kw.items() if k != "signal"} for kw in received] == [
        {"customer_id": customer.pk, "created": True, "sync_with_provider": False, "tax_codes": ["vat_20"]},
        {"customer_id": customer.pk, "created": False, "sync_with_provider": None, "tax_codes": None},
    ]


def test_no_signal_when_the_upsert_is_refused(api, organization, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        post(api, external_id="acme", country="ZZ")
    assert callbacks == []


def test_delete_sends_customer_deleted_after_commit(api, organization, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="acme")
    received = []
    customer_deleted.connect(lambda sender, **kw: received.append(kw["customer_id"]), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            api.delete("/api/v1/customers/acme")
    finally:
        customer_deleted.disconnect(dispatch_uid="t")
    assert received == [customer.pk]


def test_tax_codes_reach_the_plans_app(api, organization, django_capture_on_commit_callbacks):
    from tests.factories.plans import make_tax

    make_tax(code="vat_20")
    with django_capture_on_commit_callbacks(execute=True):
        post(api, external_id="acme", tax_codes=["vat_20"])

    customer = Customer.live.get(external_id="acme")
    assert [applied.tax.code for applied in customer.applied_taxes.all()] == ["vat_20"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/customers"),
        ("get", "/api/v1/customers"),
        ("get", "/api/v1/customers/acme"),
        ("delete", "/api/v1/customers/acme"),
        ("put", "/api/v1/organizations"),
    ],
)
def test_every_path_needs_a_key(anon_api, organization, method, path):
    response = getattr(anon_api, method)(path, {"customer": {"external_id": "x"}}, format="json")

    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "Unauthorized"}


def test_other_apps_customer_paths_are_not_swallowed(api, organization):
    from django.urls import resolve

    assert resolve("/api/v1/customers/acme").url_name == "customer"
    assert resolve("/api/v1/customers/acme/payments").url_name == "customer-payments"
    assert resolve("/api/v1/customers/acme/applied_coupons/x").url_name == "customer-applied-coupon"
    # A customer path nobody defines is the JSON 404, not a customer lookup.
    assert api.get("/api/v1/customers/acme/nothing").json()["code"] == "not_found"


def test_wrong_method_is_405_in_lagos_shape(api, organization):
    response = api.patch("/api/v1/customers/acme", {}, format="json")
    assert response.status_code == 405
    assert response.json() == {"status": 405, "error": "Method Not Allowed", "code": "method_not_allowed"}
