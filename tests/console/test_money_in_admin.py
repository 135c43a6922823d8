"""Amounts show as money in the catalogue's admin ("USD 1,129.40": currency code, thousands
separators, the currency's minor unit), never as the column's raw decimal ("1129.400000") or
djmoney's symbol ("$1,129.40"); form inputs show the currency's digits ("1129.40")."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing_project.money import format_precise, price_text
from plans import add_on_services, services
from plans.models import Charge
from tests.factories.customers import make_customer
from tests.factories.plans import make_coupon, make_plan, make_tax, metric

pytestmark = pytest.mark.django_db

# A raw column decimal (three or more decimals) or djmoney's "$" rendering.
RAW = re.compile(r"\b\d+\.\d{6}\b|\$\d")


@pytest.fixture
def finance(client: Client) -> Client:
    client.force_login(get_user_model().objects.create_superuser("finance", "f@example.com", "pw"))
    return client


def _page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", response.content.decode(), flags=re.S)
    # What is not an amount shown: inputs' step attributes, and the charge's raw properties JSON
    # (kept as stored, so an unchanged save is not a change; the pricing editor shows them).
    html = re.sub(r'step="[^"]*"', "", html)
    html = re.sub(r'<input[^>]*name="initial-charges-\d+-properties"[^>]*>', "", html)
    return re.sub(r'<textarea[^>]*name="charges-\d+-properties"[^>]*>.*?</textarea>', "", html, flags=re.S)


def test_price_text_keeps_the_minor_unit_and_extra_digits():
    assert price_text(Decimal("29.400000"), "USD") == "29.40"
    assert price_text(Decimal("0.002000"), "USD") == "0.002"
    assert price_text("5000.000000", "JPY") == "5000"
    assert format_precise(Decimal("1129.4"), "USD") == "USD 1,129.40"


def test_plans_add_ons_coupons_show_money(finance):
    graduated = {
        "billable_metric_id": str(metric("seats").pk),
        "charge_model": "graduated",
        "min_amount_cents": 250000,
        "properties": {
            "graduated_ranges": [
                {"from_value": 0, "to_value": 10, "per_unit_amount": "29.400000", "flat_amount": "0"},
                {"from_value": 11, "to_value": None, "per_unit_amount": "0.002", "flat_amount": "1500"},
            ]
        },
    }
    plan = make_plan(code="scale", amount_cents=112940, charges=[graduated])
    add_on = add_on_services.add_on_create(name="Setup", code="setup", amount_cents=250050, amount_currency="USD")
    coupon = make_coupon(code="big", amount_cents=123456)
    applied = services.applied_coupon_create(customer=make_customer(external_id="acme"), coupon=coupon)
    charge = Charge.objects.get(plan=plan)

    plans_list = _page(finance, "/admin/plans/plan/")
    assert "USD 1,129.40" in plans_list
    plan_page = _page(finance, f"/admin/plans/plan/{plan.pk}/change/")
    # The plan's price and the charge's spending minimum as the currency writes them.
    assert 'value="1129.40"' in plan_page and 'value="2500.00"' in plan_page
    # The charge's tiers in words and money beside its editor link.
    assert (
        "Graduated: 0 to 10: USD 29.40 per unit; 11 and above: USD 0.002 per unit + USD 1,500.00 flat; "
        "spending minimum USD 2,500.00"
    ) in plan_page
    pricing = _page(finance, f"/admin/plans/plan/{plan.pk}/charges/{charge.pk}/pricing/")
    assert 'value="29.40"' in pricing and 'value="0.002"' in pricing and 'value="1500.00"' in pricing
    assert "USD 2,500.50" in _page(finance, "/admin/plans/addon/")
    assert 'value="2500.50"' in _page(finance, f"/admin/plans/addon/{add_on.pk}/change/")
    assert "USD 1,234.56" in _page(finance, "/admin/plans/coupon/")
    make_coupon(code="tenth", coupon_type="percentage", percentage_rate=Decimal("12.5"), frequency="once")
    assert "12.5%" in _page(finance, "/admin/plans/coupon/")
    make_tax(code="vat_20", rate="20")
    taxes = _page(finance, "/admin/plans/tax/")
    assert "20%" in taxes and "20.0000" not in taxes
    applied_list = _page(finance, "/admin/plans/appliedcoupon/")
    assert applied_list.count("USD 1,234.56") == 2  # the amount and what remains of it
    for url in (
        "/admin/plans/plan/",
        f"/admin/plans/plan/{plan.pk}/change/",
        f"/admin/plans/plan/{plan.pk}/charges/{charge.pk}/pricing/",
        "/admin/plans/addon/",
        f"/admin/plans/addon/{add_on.pk}/change/",
        "/admin/plans/coupon/",
        f"/admin/plans/coupon/{coupon.pk}/change/",
        "/admin/plans/appliedcoupon/",
        f"/admin/plans/appliedcoupon/{applied.pk}/change/",
    ):
        html = _page(finance, url)
        assert not [html[max(0, m.start() - 120) : m.end()] for m in RAW.finditer(html)], url
