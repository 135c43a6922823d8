"""lago-python-client 1.55.0, unchanged, against a live Tollgate: customers create (and upsert),
find, find_all, destroy, and organizations update."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.customer import Customer, CustomerBillingConfiguration, Metadata, MetadataList
from lago_python_client.models.organization import Organization, OrganizationBillingConfiguration

from customers.models import Customer as CustomerModel
from tests.factories.customers import make_api_key

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lago(live_server) -> Client:
    return Client(api_key=make_api_key().raw, api_url=live_server.url)


def test_organization_update_through_the_lago_client(lago):
    updated = lago.organizations.update(
        Organization(
            default_currency="EUR",
            legal_name="Tollgate SAS",
            country="FR",
            city="Paris",
            email="billing@tollgate.test",
            timezone="Europe/Paris",
            document_number_prefix="TG",
            net_payment_term=30,
            billing_configuration=OrganizationBillingConfiguration(invoice_footer="Merci", invoice_grace_period=3),
        )
    )

    assert (updated.name, updated.legal_name, updated.country, updated.city) == (
        "Tollgate",
        "Tollgate SAS",
        "FR",
        "Paris",
    )
    assert (updated.timezone, updated.document_number_prefix, updated.net_payment_term) == ("Europe/Paris", "TG", 30)
    assert updated.billing_configuration.invoice_footer == "Merci"
    assert updated.billing_configuration.invoice_grace_period == 3
    assert updated.created_at.endswith("Z")


def test_customers_through_the_lago_client(lago):
    created = lago.customers.create(
        Customer(
            external_id="acme",
            name="Acme Corp",
            firstname="Wile",
            lastname="Coyote",
            email="ap@acme.test",
            address_line1="1 Road Runner Way",
            city="Phoenix",
            zipcode="85001",
            state="AZ",
            country="US",
            currency="USD",
            timezone="America/Phoenix",
            legal_name="Acme Corporation",
            legal_number="US-1",
            tax_identification_number="EIN-42",
            phone="+1 555 0100",
            url="https://acme.test",
            net_payment_term=15,
            billing_configuration=CustomerBillingConfiguration(
                payment_provider="manual", invoice_grace_period=2, sync_with_provider=False
            ),
            metadata=MetadataList(__root__=[Metadata(key="crm", value="HS-1", display_in_invoice=True)]),
        )
    )

    stored = CustomerModel.live.get(external_id="acme")
    assert created.lago_id == str(stored.pk)
    assert (created.external_id, created.name, created.firstname, created.lastname) == (
        "acme",
        "Acme Corp",
        "Wile",
        "Coyote",
    )
    assert (created.email, created.address_line1, created.city, created.zipcode, created.state, created.country) == (
        "ap@acme.test",
        "1 Road Runner Way",
        "Phoenix",
        "85001",
        "AZ",
        "US",
    )
    assert (created.currency, created.timezone, created.applicable_timezone) == (
        "USD",
        "America/Phoenix",
        "America/Phoenix",
    )
    assert (created.legal_name, created.legal_number, created.tax_identification_number) == (
        "Acme Corporation",
        "US-1",
        "EIN-42",
    )
    assert (created.phone, created.url, created.net_payment_term) == ("+1 555 0100", "https://acme.test", 15)
    assert created.billing_configuration.payment_provider == "manual"
    assert created.billing_configuration.invoice_grace_period == 2
    [pair] = created.metadata.__root__
    assert (pair.key, pair.value, pair.display_in_invoice) == ("crm", "HS-1", True)
    assert pair.lago_id
    assert created.created_at.endswith("Z") and created.updated_at.endswith("Z")

    # create is an upsert: the same external_id updates the same customer.
    updated = lago.customers.create(Customer(external_id="acme", city="Tucson"))
    assert (updated.lago_id, updated.city, updated.name) == (created.lago_id, "Tucson", "Acme Corp")

    lago.customers.create(Customer(external_id="tanaka", name="Tanaka K.K.", country="JP", timezone="Asia/Tokyo"))
    found = lago.customers.find("tanaka")
    assert (found.external_id, found.name, found.country, found.applicable_timezone) == (
        "tanaka",
        "Tanaka K.K.",
        "JP",
        "Asia/Tokyo",
    )
    assert found.currency is None  # set by the first subscription

    listed = lago.customers.find_all({"per_page": 1, "page": 1})
    assert [c.external_id for c in listed["customers"]] == ["tanaka"]
    assert listed["meta"]["total_count"] == 2
    assert listed["meta"]["next_page"] == 2

    destroyed = lago.customers.destroy("acme")
    assert (destroyed.lago_id, destroyed.external_id) == (created.lago_id, "acme")
    with pytest.raises(LagoApiError) as missing:
        lago.customers.find("acme")
    assert missing.value.status_code == 404
    assert [c.external_id for c in lago.customers.find_all()["customers"]] == ["tanaka"]

    # The external_id is free again: a new customer, a new lago_id.
    again = lago.customers.create(Customer(external_id="acme", name="Acme Again"))
    assert again.lago_id != created.lago_id


def test_validation_errors_reach_the_lago_client(lago):
    with pytest.raises(LagoApiError) as refused:
        lago.customers.create(Customer(external_id="bad", country="XX", timezone="Mars/Base"))

    assert refused.value.status_code == 422
    assert refused.value.response["error_details"] == {
        "country": ["country_code_invalid"],
        "timezone": ["invalid_timezone"],
    }
