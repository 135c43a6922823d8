"""lago-python-client 1.55.0, unchanged, against a live Tollgate: the portal link, Checkout links
(payment_url, checkout_url), invoice preview, destroy (a draft), retry (a failed generation),
lose_dispute, retry_payment without a provider, fees update and destroy, credit-note metadata."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.fee import Fee as LagoFee
from lago_python_client.models.invoice import InvoicePreview
from lago_python_client.models.subscription import Subscriptions

from invoicing.models import Fee, FeeType, Invoice, InvoiceStatus
from plans.models import AppliedCoupon
from tests.factories.credit_notes import make_credit_note
from tests.factories.customers import make_api_key, make_customer
from tests.factories.invoicing import events, subscribe, utc
from tests.factories.payments import make_finalized_invoice
from tests.factories.plans import make_plan, metric, standard_charge
from tests.invoicing.api.conftest import catalog, make_invoice
from tests.portal.test_checkout import session_of

pytestmark = [pytest.mark.stripe, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lago(live_server, settings, tmp_path) -> Client:
    settings.MEDIA_ROOT = tmp_path
    return Client(api_key=make_api_key().raw, api_url=live_server.url)


def test_portal_and_checkout_links_through_the_lago_client(lago, live_server, stripe_customer):
    customer = stripe_customer(payment_method=None, external_id="lago-portal")
    invoice = make_finalized_invoice(customer=customer, total="19.99")

    portal_url = lago.customers.portal_url("lago-portal")
    payment_url = lago.invoices.payment_url(str(invoice.pk))
    checkout_url = lago.customers.checkout_url("lago-portal")

    assert portal_url.startswith(live_server.url + "/portal/")
    assert session_of(payment_url)["_request"]["line_items"][0]["price_data"]["unit_amount"] == "1999"
    assert session_of(checkout_url)["mode"] == "setup"
    with pytest.raises(LagoApiError) as missing:
        lago.customers.portal_url("nobody")
    assert missing.value.status_code == 404


def test_invoice_actions_through_the_lago_client(lago):
    catalog()  # the invoices below bill its "startup" plan; its api_calls metric is shared
    now = timezone.now()
    start = utc(now.year, now.month, 1)
    plan = make_plan(code="metered", amount_cents=1000, charges=[standard_charge(amount="0.05")])
    subscription = subscribe(plan=plan, customer=make_customer(external_id="lago-acts", currency="USD"), start=start)
    events(subscription, [start] * 7)

    preview = lago.invoices.preview(
        InvoicePreview(
            customer=LagoCustomer(external_id="lago-acts"),
            subscriptions=Subscriptions(external_ids=[subscription.external_id]),
        )
    )
    assert (preview.total_amount_cents, preview.status) == (1035, "draft")  # 10.00 + 7 x 0.05
    assert not Invoice.objects.filter(customer=subscription.customer).exists()

    draft = make_invoice(status=InvoiceStatus.DRAFT)
    deleted = lago.invoices.destroy(str(draft.pk))
    assert deleted.status == "deleted"
    with pytest.raises(LagoApiError) as gone:
        lago.invoices.find(str(draft.pk))
    assert gone.value.status_code == 404

    failed = make_invoice(status=InvoiceStatus.DRAFT)
    Invoice.objects.filter(pk=failed.pk).update(status=InvoiceStatus.FAILED)
    AppliedCoupon.objects.filter(credits__invoice=failed).update(amount_remaining=Decimal("0"))
    retried = lago.invoices.retry(str(failed.pk))
    assert (retried.status, retried.total_amount_cents) == ("finalized", 3900)  # 49.00 - 10.00 coupon

    disputed = lago.invoices.lose_dispute(str(retried.lago_id))
    assert disputed.payment_dispute_lost_at is not None

    unprovided = make_finalized_invoice(customer=make_customer(external_id="lago-no-psp"))
    assert lago.invoices.retry_payment(str(unprovided.pk)) is None  # Lago's empty 200

    downloaded = lago.invoices.download(str(retried.lago_id))
    assert downloaded is not None and downloaded.file_url


def test_fees_and_credit_note_metadata_through_the_lago_client(lago):
    catalog()
    charge = {**standard_charge(amount="1"), "pay_in_advance": True, "invoiceable": False}
    charge["billable_metric_id"] = str(metric("api_calls").pk)
    subscription = subscribe(plan=make_plan(code="advance", amount_cents=0, charges=[charge]), start=utc(2025, 1, 1))
    fee = Fee.objects.create(
        subscription=subscription,
        charge=subscription.plan.charges.get(),
        fee_type=FeeType.CHARGE,
        currency="USD",
        units=1,
        amount=Decimal("1.00"),
        precise_amount=Decimal("1"),
        pay_in_advance=True,
        pay_in_advance_event_transaction_id="tx_lago",
    )

    updated = lago.fees.update(LagoFee(payment_status="succeeded"), str(fee.pk))
    assert (updated.payment_status, updated.succeeded_at is not None) == ("succeeded", True)
    destroyed = lago.fees.destroy(str(fee.pk))
    assert destroyed.lago_id == str(fee.pk)
    with pytest.raises(LagoApiError) as gone:
        lago.fees.find(str(fee.pk))
    assert gone.value.status_code == 404

    note = make_credit_note(invoice=make_invoice())
    assert lago.credit_notes.replace_metadata(str(note.pk), {"po": "PO-1"}) == {"po": "PO-1"}
    assert lago.credit_notes.merge_metadata(str(note.pk), {"dept": "ops"}) == {"po": "PO-1", "dept": "ops"}
    assert lago.credit_notes.delete_metadata_key(str(note.pk), "po") == {"dept": "ops"}
    assert lago.credit_notes.delete_all_metadata(str(note.pk)) is None
