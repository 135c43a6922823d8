"""Invoice services beside the run: the plans signals' receivers, void, update, one-off, the
hourly schedule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing_project.management.commands.setup_periodic_tasks import declared_periodic_tasks
from invoicing import services
from invoicing.errors import InvoicingError, NotAllowedError
from invoicing.models import Invoice, InvoiceEvent, InvoiceStatus, InvoiceType, InvoicingReason, PaymentStatus
from plans import services as plan_services
from tests.factories.customers import make_customer
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, make_tax

pytestmark = pytest.mark.django_db

D = Decimal


def test_hourly_tasks_are_declared_for_setup_periodic_tasks():
    specs = {spec.task: spec for spec in declared_periodic_tasks()}
    assert specs["invoicing.tasks.bill_due_subscriptions"].minute == "10"
    assert "invoicing.tasks.finalize_due_drafts" in specs


def test_plans_signals_bill_the_start_and_the_end(django_capture_on_commit_callbacks):
    plan = make_plan(amount_cents=3100, pay_in_advance=True)
    customer = make_customer()
    with django_capture_on_commit_callbacks(execute=True):
        subscription = plan_services.subscription_create(
            customer=customer, plan=plan, external_id="signals", subscription_at=utc(2024, 1, 1), now=utc(2024, 1, 1)
        )
    starting = Invoice.objects.get()
    assert starting.invoice_subscriptions.get().invoicing_reason == InvoicingReason.SUBSCRIPTION_STARTING
    assert starting.total_amount == D("31")
    with django_capture_on_commit_callbacks(execute=True):
        plan_services.subscription_terminate(subscription=subscription, now=utc(2024, 1, 21, 9))
    final = Invoice.objects.exclude(pk=starting.pk).get()
    assert final.invoice_subscriptions.get().invoicing_reason == InvoicingReason.SUBSCRIPTION_TERMINATING
    assert final.total_amount == 0  # paid in advance; no usage charges


def test_void_only_finalized_and_unpaid():
    invoice = only_invoice(bill_one_invoice())
    services.invoice_update(invoice=invoice, actor="test", payment_status=PaymentStatus.SUCCEEDED)
    with pytest.raises(NotAllowedError) as refused:
        services.invoice_void(invoice=invoice, actor="test")
    assert (refused.value.status, refused.value.code) == (405, "not_voidable")
    services.invoice_update(invoice=invoice, actor="test", payment_status=PaymentStatus.FAILED)
    voided = services.invoice_void(invoice=invoice, actor="admin:finance")
    assert voided.status == InvoiceStatus.VOIDED
    with pytest.raises(NotAllowedError):
        services.invoice_void(invoice=invoice, actor="test")
    kinds = list(InvoiceEvent.objects.filter(invoice=invoice).values_list("kind", "actor"))
    assert kinds[-1] == ("voided", "admin:finance")


def test_update_changes_payment_status_and_metadata_only():
    invoice = only_invoice(bill_one_invoice())
    total = invoice.total_amount
    with pytest.raises(InvoicingError):
        services.invoice_update(invoice=invoice, actor="test", payment_status="paid")
    updated = services.invoice_update(invoice=invoice, actor="test", metadata=[{"key": "po", "value": "PO-7"}])
    assert updated.metadata == [{"key": "po", "value": "PO-7"}]
    invoice.refresh_from_db()
    assert invoice.total_amount == total and invoice.total_paid_amount == 0


def test_one_off_invoice_with_add_on_taxes():
    tax = make_tax(code="vat_10", rate="10")
    add_on = plan_services.add_on_create(
        name="Setup", code="setup", amount_cents=10000, amount_currency="USD", tax_codes=[tax.code]
    )
    assert add_on.taxes.count() == 1
    customer = make_customer(external_id="oneoff", currency="USD")
    invoice = services.invoice_create_one_off(
        customer=customer,
        currency="USD",
        fees=[{"add_on_code": "setup", "units": "2", "unit_amount_cents": 1250, "description": "onboarding"}],
        actor="api:test",
    )
    # 2 x 12.50 = 25.00; 10% = 2.50; total 27.50
    assert (invoice.invoice_type, invoice.status) == (InvoiceType.ONE_OFF, InvoiceStatus.FINALIZED)
    assert (invoice.fees_amount, invoice.taxes_amount, invoice.total_amount) == (D("25"), D("2.5"), D("27.5"))
    assert invoice.number == "TOL-001-001"
    with pytest.raises(InvoicingError):
        services.invoice_create_one_off(customer=customer, currency="EUR", fees=[{"add_on_code": "setup"}], actor="t")


def bill_one_invoice():
    subscribe(plan=make_plan(amount_cents=1000))
    return bill(utc(2024, 2, 1, 0, 10))
