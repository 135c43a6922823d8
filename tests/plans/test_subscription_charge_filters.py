"""A subscription's own charge filters (Lago's /subscriptions/{external_id}/charges/{code}/filters,
config/routes.rb `resources :charges ... controller: "subscriptions/charges" do resources :filters`):
an edit makes the subscription's override once and changes only its copy; worked invoices."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.charge import ChargeFilter

from invoicing.models import FeeType, Invoice
from plans import override_filters
from plans.errors import NotFoundError, PlansError
from plans.models import ChargeFilter as FilterRow
from plans.models import Plan, Subscription
from tests.factories.customers import make_api_key
from tests.factories.invoicing import bill, events, subscribe, utc
from tests.factories.plans import make_plan, metric, standard_charge

D = Decimal
T = utc(2024, 1, 9)


def _plan() -> Plan:
    # 0.00 a month; api_calls at 1.00, EU calls at 2.00 (filter "EU").
    metric("api_calls", filters={"region": ["eu", "us"]})
    filters = [{"values": {"region": ["eu"]}, "properties": {"amount": "2"}, "invoice_display_name": "EU"}]
    return make_plan(amount_cents=0, charges=[standard_charge(amount="1", filters=filters)])


def _charge_fees(invoice: Invoice) -> list[tuple[str, int, Decimal]]:
    rows = invoice.fees.select_related("charge_filter").filter(fee_type=FeeType.CHARGE)
    return sorted(
        (fee.charge_filter.invoice_display_name if fee.charge_filter else "-", int(fee.units), fee.amount)
        for fee in rows
    )


def _invoice_of(external_id: str, summary) -> Invoice:
    return Invoice.objects.get(pk__in=summary.invoice_ids, invoice_subscriptions__subscription__external_id=external_id)


@pytest.mark.django_db
def test_an_overridden_filter_prices_the_subscription_and_not_the_plan():
    plan = _plan()
    plain = subscribe(plan=plan, external_id="plain")
    special = subscribe(plan=plan, external_id="special")
    plan_filter = plan.charges.get().filters.get()

    # Named by the plan's filter id (what GET answered before any override existed).
    own = override_filters.subscription_charge_filter_update(
        subscription=special,
        charge_code="api_calls",
        filter_id=str(plan_filter.pk),
        data={"properties": {"amount": "0.5"}},
    )
    added = override_filters.subscription_charge_filter_create(
        subscription=special,
        charge_code="api_calls",
        data={"values": {"region": ["us"]}, "properties": {"amount": "3"}, "invoice_display_name": "US"},
    )
    special.refresh_from_db()
    assert special.plan.parent_id == plan.pk and own.charge.plan_id == special.plan_id == added.charge.plan_id
    assert (own.values, own.invoice_display_name) == ({"region": ["eu"]}, "EU")  # keys not sent stay
    plan_filter.refresh_from_db()
    assert plan_filter.properties == {"amount": "2"} and plan.charges.get().filters.count() == 1

    for sub in (plain, special):
        events(sub, [T] * 4, region="eu")
        events(sub, [T] * 2, region="us")
    summary = bill(utc(2024, 2, 1, 0, 10))
    # The plan's: EU 4 x 2.00 = 8.00, the rest (us) 2 x 1.00 = 2.00; 10.00.
    assert _charge_fees(_invoice_of("plain", summary)) == [("-", 2, D("2")), ("EU", 4, D("8"))]
    assert _invoice_of("plain", summary).total_amount == D("10")
    # The override's: EU 4 x 0.50 = 2.00, US 2 x 3.00 = 6.00, nothing left for the rest; 8.00.
    assert _charge_fees(_invoice_of("special", summary)) == [("-", 0, D("0")), ("EU", 4, D("2")), ("US", 2, D("6"))]
    assert _invoice_of("special", summary).total_amount == D("8")


@pytest.mark.django_db
def test_delete_retires_the_copy_only_and_edits_make_one_override():
    plan = _plan()
    sub = subscribe(plan=plan, external_id="s1")
    plan_filter = plan.charges.get().filters.get()
    gone = override_filters.subscription_charge_filter_delete(
        subscription=sub, charge_code="api_calls", filter_id=str(plan_filter.pk)
    )
    assert gone.deleted_at is not None and gone.pk != plan_filter.pk
    sub.refresh_from_db()
    assert list(override_filters.subscription_charge_filters(sub, "api_calls")) == []
    assert list(override_filters.subscription_charge_filters(Subscription.objects.get(pk=sub.pk), "api_calls")) == []
    override_filters.subscription_charge_filter_create(
        subscription=sub, charge_code="api_calls", data={"values": {"region": ["eu"]}, "properties": {"amount": "9"}}
    )
    assert Plan.objects.filter(parent=plan).count() == 1
    assert FilterRow.objects.get(pk=plan_filter.pk).deleted_at is None

    events(sub, [T] * 3, region="eu")
    events(sub, [T] * 1, region="us")
    invoice = _invoice_of("s1", bill(utc(2024, 2, 1, 0, 10)))
    # 3 x 9.00 = 27.00 (the new filter) + 1 x 1.00 = 1.00 (the rest); 28.00.
    assert _charge_fees(invoice) == [("", 3, D("27")), ("-", 1, D("1"))]
    assert invoice.total_amount == D("28")


@pytest.mark.django_db
def test_bad_filters_are_refused_and_make_no_override():
    plan = _plan()
    sub = subscribe(plan=plan, external_id="s1")
    with pytest.raises(NotFoundError):
        override_filters.subscription_charge_filter_create(subscription=sub, charge_code="nope", data={"values": {}})
    with pytest.raises(NotFoundError):
        override_filters.subscription_charge_filter(sub, "api_calls", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(PlansError):
        override_filters.subscription_charge_filter_create(subscription=sub, charge_code="api_calls", data={})
    with pytest.raises(PlansError):
        override_filters.subscription_charge_filter_create(
            subscription=sub, charge_code="api_calls", data={"values": {"planet": ["mars"]}, "properties": {}}
        )
    sub.refresh_from_db()
    assert sub.plan_id == plan.pk and Plan.objects.filter(parent=plan).count() == 0


# --------------------------------------------------------------------------------------------
# lago-python-client 1.55.0, unchanged, against the live server


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_subscription_charge_filters_through_the_lago_client(live_server):
    key = make_api_key().raw
    lago = Client(api_key=key, api_url=live_server.url)
    plan = _plan()
    subscribe(plan=plan, external_id="special")
    subscribe(plan=plan, external_id="plain")
    plan_filter_id = str(plan.charges.get().filters.get().pk)

    found = lago.subscriptions.find_charge_filter("special", "api_calls", plan_filter_id)
    assert (found.lago_id, found.values, found.properties) == (plan_filter_id, {"region": ["eu"]}, {"amount": "2"})

    updated = lago.subscriptions.update_charge_filter(
        "special", "api_calls", plan_filter_id, ChargeFilter(properties={"amount": "0.5"})
    )
    assert updated.lago_id != plan_filter_id and updated.properties == {"amount": "0.5"}
    created = lago.subscriptions.create_charge_filter(
        "special", "api_calls", ChargeFilter(values={"region": ["us"]}, properties={"amount": "3"})
    )
    listed = lago.subscriptions.find_all_charge_filters("special", "api_calls")
    assert sorted(f.lago_id for f in listed["filters"]) == sorted([updated.lago_id, created.lago_id])
    assert listed["meta"]["total_count"] == 2
    # The other subscription and the plan keep the plan's filter.
    plain = httpx.get(
        f"{live_server.url}/api/v1/subscriptions/plain/charges/api_calls/filters",
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    assert [(f["lago_id"], f["properties"]) for f in plain["filters"]] == [(plan_filter_id, {"amount": "2"})]

    deleted = lago.subscriptions.destroy_charge_filter("special", "api_calls", created.lago_id)
    assert deleted.lago_id == created.lago_id
    with pytest.raises(LagoApiError) as missing:
        lago.subscriptions.find_charge_filter("special", "api_calls", created.lago_id)
    assert missing.value.status_code == 404
    assert missing.value.response == {"status": 404, "error": "Not Found", "code": "charge_filter_not_found"}
    with pytest.raises(LagoApiError) as bad:
        lago.subscriptions.create_charge_filter("special", "api_calls", ChargeFilter(values={"planet": ["mars"]}))
    assert bad.value.status_code == 422
    with pytest.raises(LagoApiError) as no_sub:
        lago.subscriptions.find_charge_filter("ghost", "api_calls", plan_filter_id)
    assert no_sub.value.response["code"] == "subscription_not_found"
