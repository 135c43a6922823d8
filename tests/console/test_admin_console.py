"""The finance console in the Django admin, through the test client: the dashboard, the invoice
page's actions and their confirmation pages, the roles and their server-side checks, the lists
(presets, totals, CSV), aging, and bounded queries on the invoice list."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import import_module

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from invoicing.models import Invoice, InvoiceEvent, InvoiceStatus, InvoiceSubscription
from payments.models import Payment
from tests.console.factories import plan, subscription, subscription_fee
from tests.factories.customers import make_customer
from tests.factories.payments import make_finalized_invoice

pytestmark = pytest.mark.django_db


def _ensure_roles() -> None:
    """The groups come from a data migration; a transactional test elsewhere may have flushed
    them, so they are made again the same way (the migration's own function)."""
    from django.apps import apps

    if not Group.objects.filter(name="Finance Manager").exists():
        import_module("payments.migrations.0005_finance_console_groups").create_groups(apps, None)


@pytest.fixture(autouse=True)
def roles(db) -> None:
    _ensure_roles()


def _user(username: str, group: str | None = None, **fields) -> User:
    user = User.objects.create_user(username, f"{username}@tollgate.test", "pw", is_staff=True, **fields)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def manager(client):
    client.force_login(_user("manager", "Finance Manager"))
    return client


@pytest.fixture
def viewer(client):
    client.force_login(_user("viewer", "Finance Viewer"))
    return client


@pytest.fixture
def invoice(db) -> Invoice:
    return make_finalized_invoice(customer=make_customer(external_id="acme"), total="1123.45")


def test_the_three_roles_exist_with_their_permissions():
    manager, viewer, support = (
        Group.objects.get(name=name) for name in ("Finance Manager", "Finance Viewer", "Support")
    )
    assert manager.permissions.filter(codename="change_invoice").exists()
    assert manager.permissions.filter(codename="add_payment").exists()
    assert not viewer.permissions.exclude(codename__startswith="view_").exists()
    assert viewer.permissions.filter(codename="view_payment").exists()
    assert set(support.permissions.values_list("codename", flat=True)) == {
        "view_customer",
        "view_invoice",
        "view_fee",
        "view_creditnote",
    }
    assert not manager.permissions.filter(content_type__app_label="djstripe").exists()


def test_dashboard_figures_per_currency_link_to_their_lists(manager, invoice):
    make_finalized_invoice(
        customer=invoice.customer,
        currency="EUR",
        total="50",
        payment_overdue=True,
        payment_due_date=timezone.localdate() - timedelta(days=3),
    )
    make_finalized_invoice(customer=invoice.customer, total="999", status=InvoiceStatus.VOIDED)
    make_finalized_invoice(
        customer=invoice.customer, total="10", status=InvoiceStatus.DRAFT, number="TOL-DRAFT", finalized_at=None
    )
    page = manager.get(reverse("admin:index"))
    html = page.content.decode()
    assert page.status_code == 200
    usd = html[html.index('data-currency="USD"') :]
    assert "Outstanding" in usd and "USD 1,123.45" in usd  # voided never counts
    assert "Drafts awaiting finalization" in usd and "Failed payments" in usd and "MRR" in usd
    eur = html[html.index('data-currency="EUR"') : html.index('data-currency="USD"')]
    assert re.search(r'href="[^"]*preset=past_due&amp;currency__exact=EUR"[^>]*>EUR 50.00<', eur)
    assert "<svg" in html and "invoiced vs collected" in html
    # Each link opens the list it sums.
    link = re.search(r'href="([^"]*preset=unpaid&amp;currency__exact=USD)"', html).group(1).replace("&amp;", "&")
    listed = manager.get(link)
    assert listed.status_code == 200
    assert "USD 1,123.45" in listed.content.decode()


def test_third_party_sections_sit_under_one_system_heading(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    system = html.index(">System<")
    assert system > html.index(">Payments<") > html.index(">Invoicing<") > html.index(">Customers<")
    assert html.count(">System<") == 1
    assert html.index("Periodic Tasks: ") > system
    assert html.index("Sequences: ") > system


def test_dashboard_links_all_open(manager, invoice):
    html = manager.get(reverse("admin:index")).content.decode()
    links = {m.replace("&amp;", "&") for m in re.findall(r'<a href="([^"]+)" data-figure=', html)}
    assert len(links) == 8
    for link in links:
        assert manager.get(link).status_code == 200, link


def test_viewer_sees_the_dashboard_but_support_does_not(client, invoice):
    client.force_login(_user("viewer", "Finance Viewer"))
    assert 'id="dashboard"' in client.get(reverse("admin:index")).content.decode()
    client.force_login(_user("support", "Support"))
    assert 'id="dashboard"' not in client.get(reverse("admin:index")).content.decode()


def test_record_a_partial_payment_through_the_form(manager, invoice):
    url = reverse("admin:console-record-payment", args=[invoice.pk])
    assert 'type="date"' in manager.get(url).content.decode()
    data = {"amount": "100.00", "paid_on": "2026-11-30", "reference": "WIRE-42"}
    confirm = manager.post(url, data)
    assert "This records a manual payment of <strong>USD 100.00</strong>" in confirm.content.decode()
    assert "USD 1,023.45 will still be due" in confirm.content.decode()
    assert not Payment.objects.exists()
    done = manager.post(url, {**data, "confirm": "1"})
    assert done.status_code == 302
    payment = Payment.objects.get()
    assert (payment.amount, payment.reference, payment.provider) == (Decimal("100"), "WIRE-42", "manual")
    invoice.refresh_from_db()
    assert invoice.total_due_amount == Decimal("1023.45")
    assert InvoiceEvent.objects.filter(invoice=invoice, kind="payment_recorded", actor="admin:manager").exists()
    page = manager.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).content.decode()
    assert "WIRE-42" in page and "USD 100.00" in page


def test_a_payment_above_what_is_due_is_refused_in_words(manager, invoice):
    url = reverse("admin:console-record-payment", args=[invoice.pk])
    page = manager.post(url, {"amount": "2000", "paid_on": "2026-11-30", "reference": "X", "confirm": "1"})
    assert "That is more than what is due (USD 1,123.45)." in page.content.decode()
    assert not Payment.objects.exists()


def test_void_needs_a_reason_kept_in_the_audit_trail(manager, invoice):
    url = reverse("admin:invoicing_invoice_void", args=[invoice.pk])
    assert "This cannot be undone" in manager.get(url).content.decode()
    assert manager.post(url, {"reason": ""}).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED
    assert manager.post(url, {"reason": "Billed the wrong entity"}).status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.VOIDED
    event = InvoiceEvent.objects.get(invoice=invoice, kind="void_reason")
    assert (event.actor, event.payload) == ("admin:manager", {"reason": "Billed the wrong entity"})


def test_refusals_are_in_words(manager, invoice):
    Invoice.objects.filter(pk=invoice.pk).update(payment_status="succeeded", total_paid_amount=invoice.total_amount)
    page = manager.post(reverse("admin:invoicing_invoice_void", args=[invoice.pk]), {"reason": "oops"})
    assert "Only a finalized invoice that is not paid can be voided." in page.content.decode()
    finalize = manager.post(reverse("admin:invoicing_invoice_finalize", args=[invoice.pk]))
    assert "This invoice is not a draft any more." in finalize.content.decode()


def test_list_void_action_asks_for_a_reason_and_reports_each_invoice(manager, invoice):
    paid = make_finalized_invoice(customer=invoice.customer, payment_status="succeeded")
    url = reverse("admin:invoicing_invoice_changelist")
    ids = [str(invoice.pk), str(paid.pk)]
    form = manager.post(url, {"action": "void", "_selected_action": ids})
    assert "reason" in form.content.decode()
    done = manager.post(
        url, {"action": "void", "_selected_action": ids, "apply": "1", "reason": "duplicate"}, follow=True
    )
    text = done.content.decode()
    assert f"{invoice}: voided" in text
    assert f"{paid}: Only a finalized invoice that is not paid can be voided. (not voided)" in text


def test_viewer_sees_no_buttons_and_forged_posts_are_refused(viewer, invoice):
    page = viewer.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).content.decode()
    # Only read-only buttons: the PDF download and the what-if re-rating (it persists nothing).
    buttons = re.findall(r'class="invoice-action" data-action="([^"]+)"', page)
    assert set(buttons) <= {"download-pdf", "what-if"}, buttons
    assert viewer.post(reverse("admin:invoicing_invoice_void", args=[invoice.pk]), {"reason": "x"}).status_code == 403
    assert viewer.post(reverse("admin:invoicing_invoice_finalize", args=[invoice.pk])).status_code == 403
    forged = viewer.post(
        reverse("admin:console-record-payment", args=[invoice.pk]),
        {"amount": "1", "paid_on": "2026-11-30", "reference": "x", "confirm": "1"},
    )
    assert forged.status_code == 403
    listed = viewer.post(
        reverse("admin:invoicing_invoice_changelist"),
        {"action": "void", "_selected_action": [str(invoice.pk)], "apply": "1", "reason": "x"},
    )
    assert listed.status_code in (200, 302, 403)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED and not Payment.objects.exists()


def test_manager_sees_the_buttons(manager, invoice):
    page = manager.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).content.decode()
    for action in ("record-payment", "void", "regenerate-pdf"):
        assert f'data-action="{action}"' in page


def test_invoice_list_presets_totals_and_billing_period(manager, invoice):
    sub = subscription("acme", plan("monthly", "monthly", 10000))
    with_period = subscription_fee(sub, "100", issued=date(2026, 11, 1))
    InvoiceSubscription.objects.create(
        invoice=with_period,
        subscription=sub,
        invoicing_reason="subscription_periodic",
        from_datetime=datetime(2026, 10, 1, tzinfo=UTC),
        to_datetime=datetime(2026, 11, 1, tzinfo=UTC),
        timestamp=datetime(2026, 11, 1, tzinfo=UTC),
    )
    page = manager.get(reverse("admin:invoicing_invoice_changelist")).content.decode()
    assert "2026-10-01 to 2026-10-31" in page
    assert 'id="currency-totals"' in page and "USD 1,223.45" in page
    unpaid = manager.get(reverse("admin:invoicing_invoice_changelist") + "?preset=unpaid").content.decode()
    assert "USD 1,223.45" in unpaid
    assert manager.get(reverse("admin:invoicing_invoice_changelist") + "?preset=past_due").status_code == 200
    assert manager.get(reverse("admin:invoicing_invoice_changelist") + "?preset=last_month").status_code == 200


def _csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_csv_export_of_the_filtered_list(viewer, invoice):
    make_finalized_invoice(customer=invoice.customer, currency="EUR", total="5")
    url = reverse("admin:invoicing_invoice_changelist")
    page = viewer.get(url + "?currency__exact=USD").content.decode()
    assert "_export=csv" in page
    rows = _csv(viewer.get(url, {"currency__exact": "USD", "_export": "csv"}))
    assert [(row["number"], row["currency"], row["total_amount"]) for row in rows] == [
        (invoice.number, "USD", "1123.45")
    ]
    for name in ("payments_payment", "invoicing_fee", "invoicing_creditnote", "customers_customer"):
        response = viewer.get(reverse(f"admin:{name}_changelist"), {"_export": "csv"})
        assert response.status_code == 200 and response["Content-Type"] == "text/csv", name


def test_receivables_aging_and_its_csv(viewer, invoice):
    today = timezone.localdate()
    make_finalized_invoice(customer=invoice.customer, total="40", payment_due_date=today - timedelta(days=45))
    make_finalized_invoice(customer=invoice.customer, total="7", payment_due_date=today - timedelta(days=120))
    page = viewer.get(reverse("admin:console-aging")).content.decode()
    assert "USD 1,123.45" in page and "USD 40.00" in page and "USD 7.00" in page
    [row] = _csv_plain(viewer.get(reverse("admin:console-aging"), {"format": "csv"}))
    assert row == {
        "customer": "acme",
        "name": "Customer acme",
        "currency": "USD",
        "current": "1123.45",
        "1-30": "0.00",
        "31-60": "40.00",
        "61-90": "0.00",
        "90+": "7.00",
        "total": "1170.45",
    }


def _csv_plain(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_support_cannot_open_aging_or_record_payments(client, invoice):
    client.force_login(_user("support", "Support"))
    assert client.get(reverse("admin:console-record-payment", args=[invoice.pk])).status_code == 403
    assert client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).status_code == 200


def test_invoice_list_runs_a_bounded_number_of_queries(manager):
    customer = make_customer(external_id="many")
    sub = subscription("many", plan("monthly", "monthly", 10000))

    def add(count: int) -> None:
        for _ in range(count):
            invoice = subscription_fee(sub, "10", issued=date(2026, 11, 1))
            InvoiceSubscription.objects.create(
                invoice=invoice,
                subscription=sub,
                invoicing_reason="in_advance_charge",
                from_datetime=timezone.now(),
                to_datetime=timezone.now(),
                timestamp=timezone.now(),
            )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert manager.get(reverse("admin:invoicing_invoice_changelist")).status_code == 200
        return len(captured)

    assert customer
    add(3)
    few = queries()
    add(30)
    assert queries() == few
    assert few <= 15


def test_credit_note_form_estimates_then_creates(manager):
    from invoicing.models import CreditNote
    from tests.factories.credit_notes import make_invoice, tax

    invoice = make_invoice(fees=[{"amount": "100.00", "taxes": [tax("vat_20", "20")]}, {"amount": "50.00"}])
    fee = invoice.fees.order_by("amount").last()
    url = reverse("admin:invoicing_invoice_credit_note", args=[invoice.pk])
    page = manager.get(url).content.decode()
    assert "USD 100.00" in page and "Left to credit" in page
    too_much = manager.post(url, {f"fee_{fee.pk}": "150", "reason": "other", "estimate": "1"}).content.decode()
    assert "at most USD 100.00 is left to credit on it" in too_much
    estimate = manager.post(url, {f"fee_{fee.pk}": "10.00", "reason": "other", "estimate": "1"}).content.decode()
    assert "USD 12.00" in estimate and 'name="create"' in estimate  # 10 plus 20% tax
    refused = manager.post(
        url, {f"fee_{fee.pk}": "10.00", "reason": "other", "refund_amount": "12.00", "create": "1"}
    ).content.decode()
    assert "Nothing was paid on this invoice, so nothing can be refunded." in refused
    done = manager.post(url, {f"fee_{fee.pk}": "10.00", "reason": "other", "create": "1"})
    assert done.status_code == 302
    note = CreditNote.objects.get(invoice=invoice)
    assert (note.total_amount, note.credit_amount) == (Decimal("12.00"), Decimal("12.00"))
    page = manager.get(url).content.decode()
    assert "USD 90.00" in page  # what is left to credit on the fee


def test_viewer_cannot_create_a_credit_note(viewer, invoice):
    url = reverse("admin:invoicing_invoice_credit_note", args=[invoice.pk])
    assert viewer.post(url, {"reason": "other", "create": "1"}).status_code == 403


def test_customer_360(manager, invoice):
    sub = subscription("acme", plan("monthly", "monthly", 10000))
    assert sub.customer_id == invoice.customer_id
    page = manager.get(reverse("admin:customers_customer_change", args=[invoice.customer_id])).content.decode()
    url = reverse("admin:console-customer", args=[invoice.customer_id])
    assert url in page
    overview = manager.get(url).content.decode()
    assert "USD 1,123.45" in overview and invoice.number in overview and sub.external_id in overview


def test_retry_payment_is_offered_to_stripe_customers_and_refused_in_words(manager, invoice):
    page = manager.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).content.decode()
    assert 'data-action="retry-payment"' not in page  # not a Stripe customer
    answer = manager.post(reverse("admin:console-retry-payment", args=[invoice.pk])).content.decode()
    assert "This customer does not pay through a payment provider: record the payment instead." in answer


def test_activity_page_shows_changes_with_before_and_after(viewer, manager):
    from plans.models import Tax
    from tests.factories.plans import make_tax

    tax = make_tax(code="vat_fr", rate="20")
    tax.rate = Decimal("5.5")
    tax.save()
    make_customer(external_id="history-co")
    page = viewer.get(reverse("admin:console-activity")).content.decode()
    assert "tax changed" in page and "rate: 20.0000 -&gt; 5.5" in page
    assert "customer created" in page
    only_taxes = viewer.get(reverse("admin:console-activity"), {"model": "tax", "since": "2000-01-01"}).content.decode()
    assert "customer created" not in only_taxes and "tax created" in only_taxes
    nobody = viewer.get(reverse("admin:console-activity"), {"user": "manager"}).content.decode()
    assert "No changes." in nobody
    assert Tax.history.count() == 2


def test_billing_run_page_previews_then_runs(manager):
    from tests.factories.invoicing import subscribe, utc

    subscribe(plan=plan("monthly", "monthly", 4900), external_id="sub_run", start=utc(2024, 1, 1))
    url = reverse("admin:invoicing_invoice_billing_run")
    assert 'type="datetime-local"' in manager.get(url).content.decode()
    preview = manager.post(url, {"at": "2024-02-01T12:00", "preview": "1"}).content.decode()
    assert "sub_run" in preview and "2024-01-01 to 2024-01-31" in preview and "USD 49.00 + usage" in preview
    assert not Invoice.objects.filter(customer__external_id="cust_sub_run").exists()
    ran = manager.post(url, {"at": "2024-02-01T12:00", "run": "1"}).content.decode()
    assert "1 created, 0 skipped (already billed), 0 failed." in ran
    again = manager.post(url, {"at": "2024-02-01T12:00", "preview": "1"}).content.decode()
    assert "sub_run: already billed for this period" in again


def test_viewer_cannot_run_billing(viewer):
    assert (
        viewer.post(reverse("admin:invoicing_invoice_billing_run"), {"at": "2024-02-01T12:00", "run": "1"}).status_code
        == 403
    )


def test_api_changes_are_in_the_history_without_a_user(api_key):
    from rest_framework.test import APIClient

    from customers.models import Organization

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw}")
    answer = client.put("/api/v1/organizations", {"organization": {"legal_name": "Tollgate SAS"}}, format="json")
    assert answer.status_code == 200
    latest = Organization.history.latest("history_date")
    assert (latest.legal_name, latest.history_user) == ("Tollgate SAS", None)
