"""The customers admin (Django test client): organization singleton, customers through the
services with Lago's rules, soft delete, API keys shown once and revoked."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from customers.models import ApiKey, Customer, Organization, hash_api_key
from customers.signals import customer_saved
from tests.factories.customers import make_api_key, make_customer

pytestmark = pytest.mark.django_db


def customer_form(**fields):
    data = {
        "external_id": "acme",
        "name": "Acme",
        "firstname": "",
        "lastname": "",
        "email": "ap@acme.test",
        "phone": "",
        "url": "",
        "legal_name": "",
        "legal_number": "",
        "tax_identification_number": "",
        "address_line1": "",
        "address_line2": "",
        "zipcode": "",
        "city": "",
        "state": "",
        "country": "fr",
        "currency": "EUR",
        "timezone": "",
        "net_payment_term": "",
        "invoice_grace_period": "",
        "payment_provider": "",
        "provider_customer_id": "",
    }
    data.update(fields)
    return data


def test_every_admin_page_answers(admin_client):
    customer = make_customer(external_id="acme")
    api_key = make_api_key()
    Organization.current()
    for url in [
        "/admin/",
        "/admin/customers/customer/",
        "/admin/customers/customer/add/",
        f"/admin/customers/customer/{customer.pk}/change/",
        "/admin/customers/apikey/",
        "/admin/customers/apikey/add/",
        f"/admin/customers/apikey/{api_key.pk}/change/",
        "/admin/customers/organization/1/change/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_organization_is_a_singleton_without_add_or_delete(admin_client):
    Organization.current()

    assert admin_client.get("/admin/customers/organization/add/").status_code == 403
    assert admin_client.get("/admin/customers/organization/1/delete/").status_code == 403
    listing = admin_client.get("/admin/customers/organization/")
    assert listing.status_code == 302 and listing["Location"].endswith("/admin/customers/organization/1/change/")


def test_organization_change_goes_through_lagos_rules(admin_client):
    organization = Organization.current()
    data = {
        field: getattr(organization, field)
        for field in [
            "name",
            "legal_name",
            "legal_number",
            "address_line1",
            "address_line2",
            "zipcode",
            "city",
            "state",
            "email",
            "tax_identification_number",
            "default_currency",
            "document_number_prefix",
            "document_numbering",
            "invoice_footer",
            "net_payment_term",
            "invoice_grace_period",
            "webhook_url",
            "late_usage_policy",
            "late_usage_window_days",
        ]
    }
    refused = admin_client.post(
        "/admin/customers/organization/1/change/", {**data, "country": "XX", "timezone": "Europe/Paris"}
    )
    saved = admin_client.post(
        "/admin/customers/organization/1/change/", {**data, "country": "fr", "timezone": "Europe/Paris"}
    )

    assert refused.status_code == 200 and "Not an ISO 3166" in refused.content.decode()
    assert saved.status_code == 302
    organization.refresh_from_db()
    assert (organization.country, organization.timezone) == ("FR", "Europe/Paris")


def test_add_customer_through_the_service(admin_client, django_capture_on_commit_callbacks):
    received = []
    customer_saved.connect(lambda sender, **kw: received.append(kw), weak=False, dispatch_uid="admin-test")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post("/admin/customers/customer/add/", customer_form())
    finally:
        customer_saved.disconnect(dispatch_uid="admin-test")

    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.live.get(external_id="acme")
    assert customer.country == "FR"  # normalized by the service
    assert customer.sequential_id is not None
    assert [kw["customer_id"] for kw in received] == [customer.pk]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"country": "ZZ"}, "Not an ISO 3166"),
        ({"timezone": "Mars/Base"}, "Not an IANA timezone"),
        ({"email": "nope"}, "Not an email address"),
        ({"currency": "ABC"}, "This value is not valid here"),
    ],
)
def test_admin_shows_lagos_rules_in_words(admin_client, fields, message):
    response = admin_client.post("/admin/customers/customer/add/", customer_form(**fields))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Customer.objects.exists()


def test_a_second_live_customer_with_one_external_id_is_refused(admin_client):
    make_customer(external_id="acme")

    response = admin_client.post("/admin/customers/customer/add/", customer_form())

    assert response.status_code == 200
    assert "A live customer already uses this external id" in response.content.decode()


def test_search_and_filters(admin_client):
    make_customer(external_id="acme", name="Acme", email="ap@acme.test", country="US", currency="USD")
    make_customer(external_id="tanaka", name="Tanaka", email="k@tanaka.test", country="JP", payment_provider="stripe")

    def listed(query: str) -> set[str]:
        response = admin_client.get(f"/admin/customers/customer/?{query}")
        assert response.status_code == 200
        return {c.external_id for c in response.context["cl"].result_list}

    assert listed("q=tanaka.test") == {"tanaka"}
    assert listed("q=acme") == {"acme"}
    assert listed("country=JP") == {"tanaka"}
    assert listed("currency=USD") == {"acme"}
    assert listed("payment_provider=stripe") == {"tanaka"}


def test_soft_deleted_customers_stay_listed_filterable_and_read_only(admin_client):
    live = make_customer(external_id="acme")
    gone = make_customer(external_id="gone")

    response = admin_client.post(
        "/admin/customers/customer/", {"action": "soft_delete", "_selected_action": [str(gone.pk)]}
    )

    assert response.status_code == 302
    gone.refresh_from_db()
    assert gone.deleted_at is not None
    all_rows = admin_client.get("/admin/customers/customer/").context["cl"].result_list
    deleted = admin_client.get("/admin/customers/customer/?state=deleted").context["cl"].result_list
    live_rows = admin_client.get("/admin/customers/customer/?state=live").context["cl"].result_list
    assert {c.pk for c in all_rows} == {live.pk, gone.pk}
    assert [c.pk for c in deleted] == [gone.pk]
    assert [c.pk for c in live_rows] == [live.pk]
    page = admin_client.get(f"/admin/customers/customer/{gone.pk}/change/")
    assert page.status_code == 200 and 'name="name"' not in page.content.decode()  # view only


def test_delete_view_is_a_soft_delete(admin_client):
    customer = make_customer(external_id="acme")

    response = admin_client.post(f"/admin/customers/customer/{customer.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.deleted_at is not None


def test_bulk_hard_delete_is_not_offered(admin_client):
    make_customer(external_id="acme")
    response = admin_client.get("/admin/customers/customer/")
    assert "delete_selected" not in response.content.decode()


def test_api_key_created_in_the_admin_is_shown_once_and_works(admin_client, organization):
    response = admin_client.post("/admin/customers/apikey/add/", {"name": "zapier"}, follow=True)

    assert response.status_code == 200
    texts = [str(m) for m in response.context["messages"]]
    shown = [match for text in texts for match in re.findall(r"<code>(tg_[\w-]+)</code>", text)]
    assert len(shown) == 1
    raw = shown[0]
    assert f"<code>{raw}</code>" in response.content.decode()  # rendered as markup, not escaped
    api_key = ApiKey.objects.get(name="zapier")
    assert api_key.key_hash == hash_api_key(raw)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/customers").status_code == 200

    # Never again: not on the change page, not in the list, and the hash never.
    for url in ["/admin/customers/apikey/", f"/admin/customers/apikey/{api_key.pk}/change/"]:
        page = admin_client.get(url).content.decode()
        assert raw not in page
        assert api_key.key_hash not in page
        assert api_key.display_prefix in page


def test_revoke_action_and_no_delete(admin_client, organization):
    api_key = make_api_key(name="old")

    response = admin_client.post(
        "/admin/customers/apikey/", {"action": "revoke", "_selected_action": [str(api_key.pk)]}
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
    assert client.get("/api/v1/customers").status_code == 401
    assert admin_client.get(f"/admin/customers/apikey/{api_key.pk}/delete/").status_code == 403
