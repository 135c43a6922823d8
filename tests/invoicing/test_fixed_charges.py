"""Fixed charges: worked amounts, computed by hand. January 2024 has 31 days, February 29.

Add-on "seat"; fixed charges priced per unit (standard 10.00), graduated (0-10 at 5.00, then
3.00) or volume (0-10 at 5.00, above 10 at 3.00 for every unit).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import fixed_charges as billing_fixed
from invoicing.models import Fee, FeeType
from plans import fixed_charges
from plans.services import add_on_create
from tests.factories.invoicing import bill, only_invoice, subscribe, utc
from tests.factories.plans import make_plan

pytestmark = pytest.mark.django_db

D = Decimal
RANGES = [
    {"from_value": 0, "to_value": 10, "per_unit_amount": "5", "flat_amount": "0"},
    {"from_value": 11, "to_value": None, "per_unit_amount": "3", "flat_amount": "0"},
]


@pytest.fixture
def seat(db):
    return add_on_create(name="Seat", code="seat", amount_cents=1000, amount_currency="USD")


def _fixed(invoice):
    return {fee.fixed_charge.code: fee for fee in Fee.objects.filter(invoice=invoice, fee_type=FeeType.FIXED_CHARGE)}


def test_in_arrears_prorated_by_units_days_graduated_and_volume(seat):
    """5 seats Jan 1-10, 8 from Jan 11: (5 x 10 + 8 x 21) / 31 = 218/31 = 7.0322... seats x 10.00
    = 70.32 (prorated); not prorated, the 8 seats standing at the end: 80.00. 15 units graduated:
    10 x 5 + 5 x 3 = 65.00; volume: 15 x 3 = 45.00."""
    plan = make_plan(code="seats", amount_cents=0)
    for code, fields in {
        "prorated": {"units": 5, "prorated": True, "properties": {"amount": "10"}},
        "whole": {"units": 5, "properties": {"amount": "10"}},
        "graduated": {"units": 15, "charge_model": "graduated", "properties": {"graduated_ranges": RANGES}},
        "volume": {"units": 15, "charge_model": "volume", "properties": {"volume_ranges": RANGES}},
    }.items():
        fixed_charges.fixed_charge_create(plan=plan, data={"add_on_code": "seat", "code": code, **fields})
    subscription = subscribe(plan=plan)
    for code in ("prorated", "whole"):
        fixed_charges.subscription_fixed_charge_units_set(
            subscription=subscription,
            fixed_charge=fixed_charges.fixed_charge_find(plan=plan, code=code),
            units=8,
            effective_at=utc(2024, 1, 11),
        )

    invoice = only_invoice(bill(utc(2024, 2, 1)))

    fees = _fixed(invoice)
    assert fees["prorated"].amount == D("70.32")
    assert fees["prorated"].units.quantize(D("0.0001")) == D("7.0323")
    assert (fees["whole"].amount, fees["whole"].units) == (D("80.00"), D(8))
    assert (fees["graduated"].amount, fees["volume"].amount) == (D("65.00"), D("45.00"))
    assert invoice.fees_amount == D("260.32")


def test_in_advance_prorated_increase_billed_at_once_for_the_days_left(seat):
    """Plan paid in advance; 5 seats at 10.00 billed on Jan 1 (50.00). 8 seats from Jan 11: the
    21 days left bill (80 - 50) x 21/31 = 20.3225... -> 20.32 at once; Feb 1 bills 8 x 10 = 80.00."""
    plan = make_plan(code="seats_advance", amount_cents=0, pay_in_advance=True)
    charge = fixed_charges.fixed_charge_create(
        plan=plan,
        data={
            "add_on_code": "seat",
            "code": "seats",
            "units": 5,
            "prorated": True,
            "pay_in_advance": True,
            "properties": {"amount": "10"},
        },
    )
    subscription = subscribe(plan=plan)
    start = only_invoice(bill(utc(2024, 1, 1, 1)))
    assert _fixed(start)["seats"].amount == D("50.00")

    change = fixed_charges.subscription_fixed_charge_units_set(
        subscription=subscription, fixed_charge=charge, units=8, effective_at=utc(2024, 1, 11)
    )
    invoice = billing_fixed.units_change_invoice(
        subscription=subscription, change=change, previous_units=D(5), now=utc(2024, 1, 11)
    )
    assert invoice is not None
    (fee,) = _fixed(invoice).values()
    assert (fee.amount, fee.units, invoice.total_amount) == (D("20.32"), D(3), D("20.32"))

    february = only_invoice(bill(utc(2024, 2, 1, 1)))
    assert _fixed(february)["seats"].amount == D("80.00")


def test_fixed_charge_routes(api, seat):
    make_plan(code="p", amount_cents=0)
    created = api.post(
        "/api/v1/plans/p/fixed_charges",
        {"fixed_charge": {"add_on_code": "seat", "code": "seats", "units": 3, "properties": {"amount": "10"}}},
        format="json",
    )
    assert created.status_code == 200, created.json()
    body = created.json()["fixed_charge"]
    assert (body["code"], body["add_on_code"], body["units"], body["charge_model"]) == (
        "seats",
        "seat",
        3.0,
        "standard",
    )
    again = api.post(
        "/api/v1/plans/p/fixed_charges", {"fixed_charge": {"add_on_code": "seat", "code": "seats"}}, format="json"
    )
    assert (again.status_code, again.json()["error_details"]) == (422, {"code": ["value_already_exist"]})
    advance = api.post(
        "/api/v1/plans/p/fixed_charges",
        {"fixed_charge": {"add_on_code": "seat", "code": "x", "pay_in_advance": True}},
        format="json",
    )
    assert advance.json()["error_details"] == {"pay_in_advance": ["not_supported_on_plan_in_arrears"]}
    updated = api.put("/api/v1/plans/p/fixed_charges/seats", {"fixed_charge": {"units": 4}}, format="json").json()
    assert updated["fixed_charge"]["units"] == 4.0
    assert [row["code"] for row in api.get("/api/v1/plans/p").json()["plan"]["fixed_charges"]] == ["seats"]

    subscribe(plan=fixed_charges.FixedCharge.objects.get(code="seats").plan, external_id="sub_f")
    changed = api.put(
        "/api/v1/subscriptions/sub_f/fixed_charges/seats", {"fixed_charge": {"units": 9}}, format="json"
    ).json()
    assert changed["fixed_charge"]["units"] == 9.0
    listed = api.get("/api/v1/subscriptions/sub_f/fixed_charges").json()
    assert [row["units"] for row in listed["fixed_charges"]] == [9.0]
    assert api.get("/api/v1/plans/p/fixed_charges/seats").json()["fixed_charge"]["units"] == 4.0
    assert api.delete("/api/v1/plans/p/fixed_charges/seats").json()["fixed_charge"]["code"] == "seats"
    assert api.get("/api/v1/plans/p/fixed_charges/seats").json()["code"] == "fixed_charge_not_found"
