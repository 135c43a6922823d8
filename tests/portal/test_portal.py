"""The customer portal: GET /customers/{id}/portal_url (Lago's {"customer": {"portal_url"}}, valid
12 hours by default as Lago's CustomerPortal::GenerateUrlService), and the page it opens: the
customer's documents, usage and wallets, billing details edited with the API's validation, and
its refusals (another customer's ids, expired, tampered, revoked tokens, the token as an API key).
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import date
from decimal import Decimal
from urllib.parse import urlparse

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from customers.models import Customer
from invoicing.models import InvoiceStatus
from portal import services, tokens
from tests.factories.credit_notes import make_credit_note
from tests.factories.customers import make_customer
from tests.factories.invoicing import events, subscribe, utc
from tests.factories.payments import make_finalized_invoice
from tests.factories.plans import make_plan, standard_charge
from tests.factories.wallets import make_wallet
from tests.invoicing.api.conftest import make_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def portal_path(api, external_id: str) -> str:
    response = api.get(f"/api/v1/customers/{external_id}/portal_url")
    assert response.status_code == 200, response.content
    url = response.json()["customer"]["portal_url"]
    assert url.startswith("http://testserver/portal/")
    return urlparse(url).path


def test_portal_url_is_lagos_shape_and_built_on_the_request_host(api, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "billing.example.com"]
    make_customer(external_id="acme", name="Acme")
    response = api.get("/api/v1/customers/acme/portal_url", HTTP_HOST="billing.example.com")
    assert response.status_code == 200
    assert list(response.json()) == ["customer"]
    assert response.json()["customer"]["portal_url"].startswith("http://billing.example.com/portal/")
    missing = api.get("/api/v1/customers/nobody/portal_url")
    assert (missing.status_code, missing.json()["code"]) == (404, "customer_not_found")


def test_the_page_shows_the_customers_documents_usage_and_wallets(api, client):
    customer = make_customer(external_id="acme", name="Acme", currency="USD")
    invoice = make_invoice(customer=customer)  # 51.76 total, due 2025-02-16
    make_invoice(customer=customer, status=InvoiceStatus.DRAFT, issuing_date=date(2025, 3, 1))
    note = make_credit_note(invoice=invoice, items=[(invoice.fees.order_by("created_at").first(), "10.00")])
    make_wallet(customer=customer, rate_amount="1", name="Prepaid", paid_credits="0", granted_credits="25")
    other = make_invoice(customer=make_customer(external_id="other", name="Other Co", currency="USD"))

    page = client.get(portal_path(api, "acme"))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Billing for Acme" in html
    assert invoice.number in html and "USD 51.76" in html
    assert "16 Feb 2025" in html
    assert "TOL-DRAFT" not in html  # drafts still change: not shown
    assert other.number not in html
    assert note.number in html
    assert "USD 25.00" in html  # the wallet's balance
    assert page["Cache-Control"] == "private, no-store"
    assert page["Referrer-Policy"] == "same-origin"


def test_current_usage_is_the_current_usage_apis(api, client):
    plan = make_plan(code="metered", amount_cents=1000, charges=[standard_charge(amount="0.05")])
    now = timezone.now()
    start = utc(now.year, now.month, 1)
    subscription = subscribe(plan=plan, customer=make_customer(external_id="meter", currency="USD"), start=start)
    events(subscription, [start] * 7)

    page = client.get(portal_path(api, "meter"))
    usage = api.get("/api/v1/customers/meter/current_usage", {"external_subscription_id": subscription.external_id})

    # 7 calls x 0.05 = 0.35, the number the API answers.
    assert usage.json()["customer_usage"]["amount_cents"] == 35
    html = page.content.decode()
    assert re.search(r"<td class=\"num\">7</td><td class=\"num\">USD 0.35</td>", html), html
    last_day = calendar.monthrange(now.year, now.month)[1]
    assert f"1 {start:%b %Y} – {last_day} {start:%b %Y}" in html


def test_billing_details_are_validated_as_the_api_validates_them(api, client):
    make_customer(external_id="acme", name="Acme", email="old@example.com")
    path = portal_path(api, "acme")
    page = client.get(path)
    csrf = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None
    checked = Client(enforce_csrf_checks=True)
    refused = checked.post(path + "billing-details", {"email": "a@example.com", "country": "FR"})
    assert refused.status_code == 403  # no CSRF token: nothing saved
    assert Customer.live.get(external_id="acme").email == "old@example.com"

    form = checked.get(path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode()).group(1)
    bad = checked.post(
        path + "billing-details",
        {"csrfmiddlewaretoken": token, "email": "not-an-address", "country": "ZZ", "city": "Lyon"},
    )
    assert bad.status_code == 422
    html = bad.content.decode()
    assert 'id="error_email"' in html and 'id="error_country"' in html
    assert Customer.live.get(external_id="acme").city == ""

    good = checked.post(
        path + "billing-details",
        {
            "csrfmiddlewaretoken": token,
            "email": "billing@acme.test, cfo@acme.test",
            "country": "fr",
            "city": "Lyon",
            "tax_identification_number": "FR123",
        },
    )
    assert good.status_code == 303
    assert good["Location"].endswith("?done=updated#billing-details")
    saved = Customer.live.get(external_id="acme")
    assert (saved.email, saved.country, saved.city, saved.tax_identification_number) == (
        "billing@acme.test, cfo@acme.test",
        "FR",
        "Lyon",
        "FR123",
    )
    assert saved.name == "Acme"  # not editable in the portal: untouched
    assert csrf is None or csrf


def test_another_customers_ids_answer_404(api, client):
    mine = make_finalized_invoice(customer=make_customer(external_id="me"))
    theirs = make_finalized_invoice(customer=make_customer(external_id="them"))
    their_note = make_credit_note(invoice=make_invoice(customer=Customer.live.get(external_id="them")))
    path = portal_path(api, "me")

    assert client.get(f"{path}invoices/{mine.pk}/pdf").status_code == 302
    assert client.get(f"{path}invoices/{theirs.pk}/pdf").status_code == 404
    assert client.post(f"{path}invoices/{theirs.pk}/pay").status_code == 404
    assert client.get(f"{path}credit_notes/{their_note.pk}/pdf").status_code == 404
    assert client.get(f"{path}invoices/not-a-uuid/pdf").status_code == 404


def test_the_pdf_link_is_the_signed_expiring_document_link(api, client):
    invoice = make_invoice(customer=make_customer(external_id="pdf", currency="USD"))
    response = client.get(f"{portal_path(api, 'pdf')}invoices/{invoice.pk}/pdf")
    assert response.status_code == 302
    document = client.get(urlparse(response["Location"]).path)
    assert document.status_code == 200
    assert b"".join(document.streaming_content).startswith(b"%PDF")


def test_expired_tampered_and_revoked_tokens_are_refused(api, client, settings):
    customer = make_customer(external_id="acme")
    path = portal_path(api, "acme")
    token = path.split("/")[2]

    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/portal/{tampered}/").status_code == 403
    # Another signed value of Tollgate (a PDF link's) is not a portal token.
    pdf_token = signing.TimestampSigner(salt="invoicing.pdf-link").sign_object({"c": str(customer.pk), "v": 1})
    assert client.get(f"/portal/{pdf_token}/").status_code == 403
    # Another customer's id with this customer's signature cannot be forged without the key.
    forged = signing.TimestampSigner(key="not-the-secret", salt=tokens.SIGNING_SALT).sign_object(
        {"c": str(make_customer(external_id="victim").pk), "v": 1}
    )
    assert client.get(f"/portal/{forged}/").status_code == 403

    def signed_ago(seconds: int) -> str:
        class Earlier(signing.TimestampSigner):
            def timestamp(self) -> str:
                return signing.b62_encode(int(time.time()) - seconds)

        return Earlier(salt=tokens.SIGNING_SALT).sign_object({"c": str(customer.pk), "v": 1})

    max_age = settings.TOLLGATE_PORTAL_LINK_MAX_AGE
    assert max_age == 12 * 3600  # Lago's 12 hours
    assert client.get(f"/portal/{signed_ago(max_age - 60)}/").status_code == 200
    expired = client.get(f"/portal/{signed_ago(max_age + 1)}/")
    assert expired.status_code == 403
    assert "This link has expired" in expired.content.decode()

    services.portal_access_revoke(customer=customer)
    assert client.get(path).status_code == 403
    assert client.get(portal_path(api, "acme")).status_code == 200  # a new link works


def test_a_deleted_customers_link_stops_working(api, client):
    make_customer(external_id="gone")
    path = portal_path(api, "gone")
    from customers.services import customer_delete

    customer_delete(customer=Customer.live.get(external_id="gone"))
    assert client.get(path).status_code == 403


def test_the_token_is_never_an_api_key(api, anon_api):
    make_customer(external_id="acme")
    token = portal_path(api, "acme").split("/")[2]
    response = anon_api.get("/api/v1/customers", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_pay_now_is_offered_only_where_stripe_can_take_it(api, client, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""
    invoice = make_finalized_invoice(customer=make_customer(external_id="manual", payment_provider="manual"))
    path = portal_path(api, "manual")
    assert "Pay now" not in client.get(path).content.decode()
    refused = client.post(f"{path}invoices/{invoice.pk}/pay")
    assert refused.status_code == 422
    assert "Online payment is not available" in refused.content.decode()
    invoice.refresh_from_db()
    assert (invoice.payment_status, invoice.total_paid_amount) == ("pending", Decimal("0"))


def test_e_mails_pay_link_is_the_portal_opened_at_the_invoice(stripe_api):
    from invoicing.mail.links import invoice_pay_link

    stripe_customer = make_customer(external_id="mail-pay", payment_provider="stripe")
    payable = make_finalized_invoice(customer=stripe_customer)
    manual = make_finalized_invoice(customer=make_customer(external_id="mail-manual", payment_provider="manual"))

    link = invoice_pay_link(invoice=payable, base_url="https://billing.example.com")

    assert link.startswith("https://billing.example.com/portal/")
    assert link.endswith(f"/#invoice-{payable.pk}")
    assert services.portal_customer(urlparse(link).path.split("/")[2]) == stripe_customer
    assert "/api/v1/documents/" in invoice_pay_link(invoice=manual, base_url="https://billing.example.com")
