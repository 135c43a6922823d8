"""PUT /api/v1/organizations in Lago's shape."""

from __future__ import annotations

import pytest

from customers.models import Organization

pytestmark = pytest.mark.django_db

ORGANIZATION_KEYS = {
    "lago_id",
    "name",
    "created_at",
    "webhook_url",
    "webhook_urls",
    "hmac_key",  # signs webhooks of hmac endpoints (webhooks app)
    "country",
    "address_line1",
    "address_line2",
    "state",
    "zipcode",
    "email",
    "city",
    "legal_name",
    "legal_number",
    "net_payment_term",
    "tax_identification_number",
    "timezone",
    "default_currency",
    "document_numbering",
    "document_number_prefix",
    "finalize_zero_amount_invoice",
    "email_settings",
    "billing_configuration",
}


def put(api, **organization):
    return api.put("/api/v1/organizations", {"organization": organization}, format="json")


def test_update_answers_lagos_organization(api, organization):
    response = put(
        api,
        legal_name="Tollgate SAS",
        legal_number="RCS 123",
        address_line1="1 rue de Rivoli",
        zipcode=75001,
        city="Paris",
        country="fr",
        email="billing@tollgate.test",
        tax_identification_number="FR123",
        timezone="Europe/Paris",
        default_currency="eur",
        document_number_prefix="tg",
        document_numbering="per_organization",
        net_payment_term=30,
        webhook_url="https://hooks.tollgate.test/lago",
        billing_configuration={"invoice_footer": "Merci", "invoice_grace_period": 5, "document_locale": "fr"},
    )

    assert response.status_code == 200
    body = response.json()["organization"]
    assert set(body) == ORGANIZATION_KEYS
    assert body["name"] == "Tollgate"  # not sent: kept
    assert (body["country"], body["default_currency"], body["document_number_prefix"]) == ("FR", "EUR", "TG")
    assert body["zipcode"] == "75001"
    assert body["timezone"] == "Europe/Paris"
    assert body["document_numbering"] == "per_organization"
    assert body["net_payment_term"] == 30
    assert body["webhook_urls"] == ["https://hooks.tollgate.test/lago"]
    assert body["billing_configuration"] == {
        "invoice_footer": "Merci",
        "invoice_grace_period": 5,
        "document_locale": "fr",  # stored: the language of the documents' e-mails
    }
    stored = Organization.current()
    assert (stored.invoice_grace_period, stored.invoice_footer, stored.legal_name) == (5, "Merci", "Tollgate SAS")


def test_partial_update_and_null_clears_text(api, organization):
    put(api, city="Paris", legal_name="Tollgate SAS")
    body = put(api, city=None).json()["organization"]

    assert body["city"] is None
    assert body["legal_name"] == "Tollgate SAS"


def test_organization_timezone_becomes_customers_applicable_timezone(api, organization):
    api.post("/api/v1/customers", {"customer": {"external_id": "c"}}, format="json")
    put(api, timezone="Asia/Tokyo")

    assert api.get("/api/v1/customers/c").json()["customer"]["applicable_timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("organization_fields", "details"),
    [
        ({"country": "XX"}, {"country": ["country_code_invalid"]}),
        ({"timezone": "Nowhere/City"}, {"timezone": ["invalid_timezone"]}),
        ({"timezone": None}, {"timezone": ["value_is_mandatory"]}),
        ({"default_currency": "ABC"}, {"default_currency": ["value_is_invalid"]}),
        ({"email": "nope"}, {"email": ["invalid_email_format"]}),
        ({"document_number_prefix": "WAY-TOO-LONG"}, {"document_number_prefix": ["value_is_invalid"]}),
        ({"document_number_prefix": "a b"}, {"document_number_prefix": ["value_is_invalid"]}),
        ({"document_numbering": "yearly"}, {"document_numbering": ["value_is_invalid"]}),
        ({"net_payment_term": -1}, {"net_payment_term": ["value_is_invalid"]}),
        ({"net_payment_term": None}, {"net_payment_term": ["value_is_invalid"]}),
        ({"billing_configuration": {"invoice_grace_period": "x"}}, {"invoice_grace_period": ["value_is_invalid"]}),
        ({"billing_configuration": []}, {"billing_configuration": ["value_is_invalid"]}),
        ({"webhook_url": "ftp://x"}, {"webhook_url": ["url_invalid"]}),
        ({"name": ""}, {"name": ["value_is_mandatory"]}),
        ({"legal_name": {"a": 1}}, {"legal_name": ["value_is_invalid"]}),
    ],
)
def test_invalid_organization_is_422_and_unchanged(api, organization, organization_fields, details):
    before = Organization.current()

    response = put(api, city="Changed?", **organization_fields)

    assert response.status_code == 422
    assert response.json() == {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": details,
    }
    after = Organization.current()
    assert (after.city, after.updated_at) == (before.city, before.updated_at)


def test_missing_root_is_400(api, organization):
    response = api.put("/api/v1/organizations", {"name": "x"}, format="json")
    assert response.json() == {
        "status": 400,
        "error": "BadRequest: param is missing or the value is empty: organization",
    }
