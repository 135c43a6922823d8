"""The events browser: by customer, subscription, code, transaction id and time (in the
organization's timezone), and the unmatched events with their reason in words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Organization
from tests.factories.customers import make_customer
from tests.factories.metrics import make_event, make_metric
from tests.factories.plans import make_plan, make_subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(db):
    organization = Organization.current()
    organization.timezone = "Europe/Paris"
    organization.save()
    make_metric(code="calls")
    plan = make_plan(code="basic")
    make_subscription(customer=make_customer(external_id="acme"), plan=plan, external_id="sub_acme")
    make_subscription(customer=make_customer(external_id="globex"), plan=plan, external_id="sub_globex")
    make_event(
        transaction_id="tx_acme_may",
        external_subscription_id="sub_acme",
        code="calls",
        timestamp=datetime(2026, 5, 10, 8, 0, tzinfo=UTC),
    )
    make_event(
        transaction_id="tx_acme_june",
        external_subscription_id="sub_acme",
        code="calls",
        timestamp=datetime(2026, 6, 2, 8, 0, tzinfo=UTC),
    )
    make_event(
        transaction_id="tx_globex",
        external_subscription_id="sub_globex",
        code="calls",
        timestamp=datetime(2026, 5, 31, 21, 30, tzinfo=UTC),
    )  # May 31st, 23:30 in Paris (UTC+2)
    make_event(
        transaction_id="tx_typo",
        external_subscription_id="sub_acme",
        code="cals",
        timestamp=datetime(2026, 5, 12, tzinfo=UTC),
    )
    make_event(
        transaction_id="tx_nosub",
        external_subscription_id="sub_ghost",
        code="calls",
        timestamp=datetime(2026, 5, 12, tzinfo=UTC),
    )
    make_event(
        transaction_id="tx_both",
        external_subscription_id="sub_ghost",
        code="cals",
        timestamp=datetime(2026, 5, 12, tzinfo=UTC),
    )


def _listed(response) -> set[str]:
    body = response.content.decode()
    return {tx for tx in ("tx_acme_may", "tx_acme_june", "tx_globex", "tx_typo", "tx_nosub", "tx_both") if tx in body}


def test_browse_by_customer_subscription_code_transaction_and_time(admin_client, events):
    url = "/admin/metrics/event/"
    assert _listed(admin_client.get(url, {"customer": "acme"})) == {"tx_acme_may", "tx_acme_june", "tx_typo"}
    assert _listed(admin_client.get(url, {"customer": "nobody"})) == set()
    assert _listed(admin_client.get(url, {"subscription": "sub_globex"})) == {"tx_globex"}
    assert _listed(admin_client.get(url, {"transaction": "tx_nosub"})) == {"tx_nosub"}
    assert _listed(admin_client.get(url, {"code": "calls", "customer": "acme"})) == {"tx_acme_may", "tx_acme_june"}
    # The boxes are read in the organization's zone: globex's event (21:30 UTC) is on May 31st in
    # Paris, so it is not in Paris's June and is in its last hour of May.
    june = admin_client.get(url, {"time_from": "2026-06-01T00:00", "time_to": "2026-07-01T00:00"})
    assert _listed(june) == {"tx_acme_june"}
    may_end = admin_client.get(url, {"time_from": "2026-05-31T23:00", "time_to": "2026-06-01T00:00"})
    assert _listed(may_end) == {"tx_globex"}
    # Times are shown in the organization's zone, with the zone named.
    assert (
        "2026-05-31 23:30 CEST (Europe/Paris)" in admin_client.get(url, {"transaction": "tx_globex"}).content.decode()
    )
    # The filters keep each other: the customer box carries the code as a hidden field.
    page = admin_client.get(url, {"code": "calls", "customer": "acme"}).content.decode()
    assert 'type="hidden" name="code" value="calls"' in page


def test_unmatched_events_say_why(admin_client, events):
    page = admin_client.get("/admin/metrics/unmatchedevent/")
    body = page.content.decode()
    assert _listed(page) == {"tx_typo", "tx_nosub", "tx_both"}
    rows = {tx: body[body.index(tx) :].split("</tr>")[0] for tx in ("tx_typo", "tx_nosub", "tx_both")}
    assert "No live billable metric has this code." in rows["tx_typo"]
    assert "No subscription has this external id." not in rows["tx_typo"]
    assert "No subscription has this external id." in rows["tx_nosub"]
    assert "No live billable metric has this code." not in rows["tx_nosub"]
    assert "No live billable metric has this code. No subscription has this external id." in rows["tx_both"]
    by_customer = admin_client.get("/admin/metrics/unmatchedevent/", {"customer": "acme"})
    assert _listed(by_customer) == {"tx_typo"}


def test_the_events_list_costs_the_same_whatever_its_rows(admin_client, events):
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get("/admin/metrics/unmatchedevent/").status_code == 200
    for n in range(30):
        make_event(
            transaction_id=f"tx_more_{n}",
            external_subscription_id="sub_ghost",
            code="cals",
            timestamp=datetime(2026, 5, 13, tzinfo=UTC),
        )
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get("/admin/metrics/unmatchedevent/").status_code == 200
    assert len(many) == len(few)
