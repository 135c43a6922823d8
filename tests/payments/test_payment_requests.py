"""Payment requests (Lago's): one request for several overdue invoices of a customer, e-mailed with
a pay link (to a real SMTP server on loopback), followed to success, announced by webhooks, and
driven by lago-python-client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from invoicing.models import InvoiceEvent
from payments import services
from payments.models import PaymentRequest, PaymentRequestStatus, PaymentStatus, PaymentTrigger
from payments.providers import ChargeOutcome
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice, make_stripe_payment
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailing(organization):
    organization.name = "Acme Billing"
    organization.email = "billing@acme.test"
    organization.save()
    return organization


@pytest.fixture
def hooks(api, settings):
    settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS = True
    response = api.post("/api/v1/webhook_endpoints", {"webhook_endpoint": {"webhook_url": "http://127.0.0.1:9/h"}})
    assert response.status_code == 200, response.json()


def overdue(customer, total: str, currency: str = "USD", days: int = 10, **fields):
    today = timezone.now().date()
    return make_finalized_invoice(
        customer=customer,
        total=total,
        currency=currency,
        issuing_date=today - timedelta(days=days + 30),
        payment_due_date=today - timedelta(days=days),
        payment_overdue=True,
        **fields,
    )


def post(api, **payment_request):
    return api.post("/api/v1/payment_requests", {"payment_request": payment_request}, format="json")


def test_one_request_for_two_overdue_invoices(mailing, smtp_server, api, hooks, django_capture_on_commit_callbacks):
    customer = make_customer(external_id="pr_acme", email="ap@buyer.test")
    first = overdue(customer, "100.00")
    second = overdue(customer, "50.00")
    services.payment_create_manual(invoice_id=first.pk, amount_cents=2000, reference="EARLIER")

    with django_capture_on_commit_callbacks(execute=True):
        response = post(api, external_customer_id="pr_acme", lago_invoice_ids=[str(first.pk), str(second.pk)])

    assert response.status_code == 200, response.json()
    body = response.json()["payment_request"]
    # 100 - 20 already paid + 50 = 130.00 still due, in cents
    assert (body["amount_cents"], body["amount_currency"], body["payment_status"]) == (13000, "USD", "pending")
    assert body["email"] == "ap@buyer.test"
    assert body["customer"]["external_id"] == "pr_acme"
    assert sorted(i["lago_id"] for i in body["invoices"]) == sorted([str(first.pk), str(second.pk)])
    got = smtp_server.received[0]
    assert got.rcpt_tos == ["ap@buyer.test"]
    assert got.subject == "Your overdue invoices from Acme Billing"
    text = got.body("plain")
    assert first.number in text and second.number in text
    assert "USD 130.00" in text and "USD 80.00" in text
    assert "/api/v1/documents/" in text  # each invoice's pay link (for now its signed PDF link)
    assert got.attachments() == []
    for invoice in (first, second):
        assert list(
            InvoiceEvent.objects.filter(invoice=invoice, kind__in=["payment_request_created", "email_sent"])
            .order_by("id")
            .values_list("kind", flat=True)
        ) == ["payment_request_created", "email_sent"]
    assert WebhookDelivery.objects.filter(webhook_type="payment_request.created").count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        services.payment_create_manual(invoice_id=first.pk, amount_cents=8000, reference="A")
    assert PaymentRequest.objects.get().payment_status == PaymentRequestStatus.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        services.payment_create_manual(invoice_id=second.pk, amount_cents=5000, reference="B")
    assert PaymentRequest.objects.get().payment_status == PaymentRequestStatus.SUCCEEDED
    updated = WebhookDelivery.objects.get(webhook_type="payment_request.payment_status_updated")
    assert '"payment_status": "succeeded"' in updated.body or '"payment_status":"succeeded"' in updated.body


def test_refusals_as_lago(api, mailing):
    customer = make_customer(external_id="pr_refusals", email="ap@buyer.test")
    late = overdue(customer, "10.00")
    not_late = make_finalized_invoice(customer=customer, total="10.00")
    euro = overdue(customer, "10.00", currency="EUR")
    foreign = overdue(make_customer(external_id="pr_other"), "10.00")

    def code(**fields):
        answer = post(api, **fields)
        return answer.status_code, answer.json().get("code")

    # lago-api app/services/payment_requests/create_service.rb, check_preconditions
    assert code(external_customer_id="nobody", lago_invoice_ids=[str(late.pk)]) == (404, "customer_not_found")
    assert code(external_customer_id="pr_refusals", lago_invoice_ids=[str(foreign.pk)]) == (404, "invoice_not_found")
    assert code(external_customer_id="pr_refusals", lago_invoice_ids=[str(late.pk), str(not_late.pk)]) == (
        405,
        "invoices_not_overdue",
    )
    assert code(external_customer_id="pr_refusals", lago_invoice_ids=[str(late.pk), str(euro.pk)]) == (
        405,
        "invoices_have_different_currencies",
    )
    assert code(external_customer_id="pr_refusals", lago_invoice_ids=[str(late.pk), str(euro.pk)]) == (
        405,
        "invoices_have_different_currencies",
    )
    assert code(external_customer_id="pr_refusals", lago_invoice_ids=[str(late.pk)], email="nope")[0] == 422
    assert code(external_customer_id="pr_refusals", lago_invoice_ids="x")[0] == 422
    assert PaymentRequest.objects.count() == 0


def test_lists_and_show(api, mailing):
    customer = make_customer(external_id="pr_list", email="ap@buyer.test")
    invoice = overdue(customer, "10.00")
    created = post(api, external_customer_id="pr_list", lago_invoice_ids=[str(invoice.pk)]).json()["payment_request"]
    other = make_customer(external_id="pr_list2")
    post(api, external_customer_id="pr_list2", lago_invoice_ids=[str(overdue(other, "5.00").pk)])

    assert api.get("/api/v1/payment_requests").json()["meta"]["total_count"] == 2
    mine = api.get("/api/v1/payment_requests", {"external_customer_id": "pr_list"}).json()["payment_requests"]
    assert [row["lago_id"] for row in mine] == [created["lago_id"]]
    nested = api.get("/api/v1/customers/pr_list/payment_requests").json()["payment_requests"]
    assert [row["lago_id"] for row in nested] == [created["lago_id"]]
    assert api.get("/api/v1/payment_requests", {"payment_status": "succeeded"}).json()["payment_requests"] == []
    assert api.get("/api/v1/payment_requests", {"payment_status": "bogus"}).status_code == 422
    assert api.get(f"/api/v1/payment_requests/{created['lago_id']}").json()["payment_request"]["amount_cents"] == 1000
    assert api.get("/api/v1/payment_requests/x").json()["code"] == "payment_request_not_found"
    assert api.get("/api/v1/customers/nobody/payment_requests").status_code == 404


def test_a_failed_dunning_card_retry_fails_the_request(api, mailing, hooks):
    from payments.models import DunningCampaign, DunningStep
    from payments.payment_requests import payment_request_create

    customer = make_customer(external_id="pr_card", payment_provider="stripe")
    invoice = overdue(customer, "40.00")
    step = DunningStep.objects.create(
        campaign=DunningCampaign.objects.create(code="c", name="C", is_default=True), days_past_due=3
    )
    request = payment_request_create(
        external_customer_id="pr_card", invoice_ids=[invoice.pk], actor="test", dunning_step=step
    )
    attempt = make_stripe_payment(
        invoice=invoice, status=PaymentStatus.PENDING, trigger=PaymentTrigger.DUNNING, idempotency_key="dun-1"
    )

    services.payment_apply_outcome(
        payment_id=attempt.pk,
        outcome=ChargeOutcome(PaymentStatus.FAILED, failure_code="card_declined", failure_reason="Declined."),
    )

    request.refresh_from_db()
    assert request.payment_status == PaymentRequestStatus.FAILED
    failure = WebhookDelivery.objects.get(webhook_type="payment_request.payment_failure")
    assert failure.object_type == "payment_provider_payment_request_payment_error"
    assert str(request.pk) in failure.body and "card_declined" in failure.body


@pytest.mark.django_db(transaction=True)
def test_lago_client_payment_requests(live_server):
    from lago_python_client.client import Client
    from lago_python_client.models.payment_request import PaymentRequest as LagoPaymentRequest

    from customers.models import Organization
    from tests.factories.customers import make_api_key

    organization = Organization.current()
    organization.email = "billing@acme.test"
    organization.save()
    lago = Client(api_key=make_api_key().raw, api_url=live_server.url)
    customer = make_customer(external_id="pr_lago", email="ap@buyer.test")
    first, second = overdue(customer, "12.00"), overdue(customer, "8.50")

    created = lago.payment_requests.create(
        LagoPaymentRequest(
            email="books@buyer.test", external_customer_id="pr_lago", lago_invoice_ids=[str(first.pk), str(second.pk)]
        )
    )
    found = lago.payment_requests.find(created.lago_id)
    listed = lago.payment_requests.find_all({"external_customer_id": "pr_lago"})

    assert (created.amount_cents, created.amount_currency, created.email) == (2050, "USD", "books@buyer.test")
    assert created.customer.external_id == "pr_lago"
    assert sorted(i.number for i in created.invoices.__root__) == sorted([first.number, second.number])
    assert found.payment_status == "pending"
    assert [r.lago_id for r in listed["payment_requests"]] == [created.lago_id]
