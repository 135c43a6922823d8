"""Model constraints (enforced by the database) and the customers services' rules."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers import services
from customers.models import Customer, Organization
from tests.concurrency import race
from tests.factories.customers import make_customer


@pytest.mark.django_db
class TestConstraints:
    def test_organization_is_a_singleton(self):
        Organization.current()
        with pytest.raises(IntegrityError), transaction.atomic():
            Organization.objects.create(id=2, name="Second")
        assert Organization.current().pk == 1 and Organization.objects.count() == 1

    def test_one_live_customer_per_external_id(self):
        make_customer(external_id="acme")
        with pytest.raises(IntegrityError), transaction.atomic():
            Customer.objects.create(external_id="acme")

    def test_deleted_customers_do_not_hold_their_external_id(self):
        make_customer(external_id="acme", deleted_at=timezone.now())
        make_customer(external_id="acme", deleted_at=timezone.now())
        make_customer(external_id="acme")
        assert Customer.objects.filter(external_id="acme").count() == 3
        assert Customer.live.filter(external_id="acme").count() == 1

    def test_sequential_ids_are_unique(self):
        make_customer(external_id="a", sequential_id=7)
        with pytest.raises(IntegrityError), transaction.atomic():
            make_customer(external_id="b", sequential_id=7)

    def test_applicable_settings_fall_back_to_the_organization(self):
        organization = Organization.current()
        organization.timezone, organization.net_payment_term, organization.invoice_grace_period = "Asia/Tokyo", 30, 2
        organization.save()
        inherits = make_customer(external_id="a")
        own = make_customer(external_id="b", timezone="Europe/Paris", net_payment_term=0, invoice_grace_period=0)

        assert (inherits.applicable_timezone(), own.applicable_timezone()) == ("Asia/Tokyo", "Europe/Paris")
        # 0 is a setting of its own, not "unset"
        assert (inherits.applicable_net_payment_term(), own.applicable_net_payment_term()) == (30, 0)
        assert (inherits.applicable_invoice_grace_period(), own.applicable_invoice_grace_period()) == (2, 0)


@pytest.mark.django_db
class TestServices:
    def test_upsert_reports_created_then_updated(self):
        first = services.customer_upsert(external_id="acme", changes={"name": "Acme"})
        second = services.customer_upsert(external_id="acme", changes={"city": "Lyon"})

        assert (first.created, second.created) == (True, False)
        assert second.customer.pk == first.customer.pk
        assert (second.customer.name, second.customer.city) == ("Acme", "Lyon")

    def test_changing_payment_provider_drops_the_old_providers_customer_id(self):
        services.customer_upsert(
            external_id="acme", changes={"payment_provider": "stripe", "provider_customer_id": "cus_1"}
        )
        same = services.customer_upsert(external_id="acme", changes={"payment_provider": "stripe"}).customer
        assert same.provider_customer_id == "cus_1"
        manual = services.customer_upsert(external_id="acme", changes={"payment_provider": "manual"}).customer
        assert manual.provider_customer_id == ""

    def test_customer_save_refuses_a_second_live_external_id(self):
        make_customer(external_id="acme")
        with pytest.raises(services.CustomersValidationError) as refused:
            services.customer_save(customer=Customer(external_id="acme"))
        assert refused.value.details == {"external_id": ["value_already_exist"]}

    def test_deleting_twice_keeps_the_first_deletion_date(self):
        customer = make_customer(external_id="acme")
        first = services.customer_delete(customer=customer).deleted_at
        second = services.customer_delete(customer=customer).deleted_at
        assert first == second is not None

    def test_api_key_name_is_required(self):
        with pytest.raises(services.CustomersValidationError):
            services.api_key_create(name="")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_upserts_of_one_external_id_leave_one_customer():
    """Eight clients create the same customer at once: one creates it, the others update it (the
    unique index on live external ids decides; the loser retries as an update)."""
    Organization.current()

    outcomes = race(lambda: services.customer_upsert(external_id="race", changes={"name": "writer"}).created, 8)

    assert sorted(outcomes, key=str) == [False] * 7 + [True]
    customer = Customer.live.get(external_id="race")
    assert customer.sequential_id is not None
    assert Customer.objects.count() == 1


@pytest.mark.django_db
def test_sequential_ids_come_from_the_sequence_invoicing_numbering_uses():
    """Customers created through the service and customers numbered late by invoicing (rows made
    without the service) draw from one sequence: no unique-constraint collision."""
    from invoicing.numbering import customer_sequential_id

    first = services.customer_upsert(external_id="a", changes={}).customer
    legacy = make_customer(external_id="legacy")
    with transaction.atomic():
        legacy_number = customer_sequential_id(legacy)
    second = services.customer_upsert(external_id="b", changes={}).customer

    assert len({first.sequential_id, legacy_number, second.sequential_id}) == 3
    assert second.sequential_id == legacy_number + 1 == first.sequential_id + 2
