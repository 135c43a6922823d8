"""lago-python-client 1.55.0, unchanged, against a live Tollgate: invoices (find, find_all,
download, refresh, finalize, void), fees (find, find_all) and a customer's current usage."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError

from invoicing import runs
from invoicing.models import Invoice
from tests.factories.customers import make_api_key, make_customer
from tests.factories.metrics import make_events
from tests.factories.plans import make_subscription

from .conftest import catalog, make_invoice

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lago(live_server, settings, tmp_path) -> Client:
    settings.MEDIA_ROOT = tmp_path
    return Client(api_key=make_api_key().raw, api_url=live_server.url)


def test_invoices_and_fees_through_the_lago_client(lago):
    issued = make_invoice(customer=make_customer(external_id="lago-inv", currency="USD"))
    plan, _ = catalog()
    customer = make_customer(external_id="lago-draft", currency="USD", invoice_grace_period=5)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    make_subscription(customer=customer, plan=plan, external_id="sub_lago_draft", subscription_at=start, now=start)
    draft_id = runs.bill_due(at=datetime(2025, 2, 1, tzinfo=UTC), actor="test").invoice_ids[0]

    found = lago.invoices.find(str(issued.pk))
    listed = lago.invoices.find_all({"external_customer_id": "lago-inv"})
    downloaded = lago.invoices.download(str(issued.pk))
    refreshed = lago.invoices.refresh(str(draft_id))
    finalized = lago.invoices.finalize(str(draft_id))
    voided = lago.invoices.void(str(draft_id))

    assert (found.number, found.total_amount_cents, found.taxes_amount_cents) == (issued.number, 5176, 863)
    assert [fee.amount_cents for fee in found.fees.__root__] == [4900, 100, 313]
    assert [invoice.lago_id for invoice in listed["invoices"]] == [str(issued.pk)]
    assert listed["meta"]["total_count"] == 1
    assert downloaded.file_url and "/api/v1/documents/" in downloaded.file_url
    pdf = httpx.get(downloaded.file_url)
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    assert httpx.get(downloaded.file_url + "x").status_code == 403
    assert (refreshed.status, refreshed.total_amount_cents) == ("draft", 4900)  # no usage: the fee only
    assert finalized.status == "finalized" and finalized.number != "TOL-DRAFT"
    assert voided.status == "voided"
    with pytest.raises(LagoApiError) as refused:
        lago.invoices.void(str(draft_id))
    assert refused.value.status_code == 405

    fees = lago.fees.find_all({"external_customer_id": "lago-inv"})
    one = lago.fees.find(fees["fees"][0].lago_id)
    assert sorted(fee.amount_cents for fee in fees["fees"]) == [100, 313, 4900]
    assert one.lago_invoice_id == str(issued.pk)
    assert Invoice.objects.get(pk=issued.pk).file


def test_current_usage_through_the_lago_client(lago):
    plan, _ = catalog()
    now = timezone.now()
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    customer = make_customer(external_id="lago-usage", currency="USD")
    make_subscription(
        customer=customer, plan=plan, external_id="sub_lago_usage", subscription_at=month_start, now=month_start
    )
    make_events(
        {"code": "api_calls", "external_subscription_id": "sub_lago_usage", "timestamp": now} for _ in range(1500)
    )

    usage = lago.customers.current_usage("lago-usage", "sub_lago_usage")

    # 1,500 calls: 1,000 free, 500 x 0.002 = 1.00; no storage.
    assert (usage.currency, usage.amount_cents, usage.total_amount_cents) == ("USD", 100, 100)
    by_code = {row.billable_metric.code: row for row in usage.charges_usage}
    assert (by_code["api_calls"].units, by_code["api_calls"].events_count) == ("1500", 1500)
    assert by_code["storage_gb"].amount_cents == 0
    with pytest.raises(LagoApiError) as missing:
        lago.customers.current_usage("lago-usage", "sub_nope")
    assert missing.value.status_code == 404
