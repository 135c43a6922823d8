"""Coupons before taxes, taxes per rate rounded once, in USD (2 decimals), JPY (0) and BHD (3)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.models import Credit, FeeType
from plans import services as plan_services
from plans.models import AppliedCoupon
from tests.factories.customers import make_customer
from tests.factories.invoicing import amounts, bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_coupon, make_plan, make_tax, metric, standard_charge

pytestmark = pytest.mark.django_db

D = Decimal
RUN_AT = utc(2024, 2, 1, 0, 10)


def _usd_invoice_setup(**plan_fields):
    plan = make_plan(amount_cents=4900, charges=[standard_charge(amount="0.05")], **plan_fields)
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 5)] * 10)  # 10 x 0.05 = 0.50
    return sub


def test_fixed_coupon_before_an_organization_tax_usd():
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    sub = _usd_invoice_setup()
    applied = plan_services.applied_coupon_create(customer=sub.customer, coupon=make_coupon(amount_cents=1000))
    invoice = only_invoice(bill(RUN_AT))
    # fees 49.50; coupon 10 -> 39.50; VAT 20% of 39.50 = 7.90; total 47.40
    assert amounts(invoice) == {
        "fees_amount": D("49.5"),
        "coupons_amount": D("10"),
        "sub_total_excluding_taxes_amount": D("39.5"),
        "taxes_amount": D("7.9"),
        "sub_total_including_taxes_amount": D("47.4"),
        "credit_notes_amount": D("0"),
        "total_amount": D("47.4"),
    }
    tax = invoice.applied_taxes.get()
    assert (tax.tax_code, tax.fees_amount, tax.amount) == ("vat_20", D("39.5"), D("7.9"))
    credit = Credit.objects.get(invoice=invoice)
    assert (credit.applied_coupon_id, credit.amount, credit.before_taxes) == (applied.pk, D("10"), True)
    # Each fee carries its share: 49 x 10 / 49.5 and 0.5 x 10 / 49.5; they add up to the coupon.
    shares = sum(fee.precise_coupons_amount for fee in invoice.fees.all())
    assert shares.quantize(D("0.000001")) == D("10")
    applied.refresh_from_db()
    assert (applied.amount_remaining, applied.status) == (D("0"), "terminated")


def test_fixed_once_coupon_larger_than_the_invoice_carries_over():
    sub = _usd_invoice_setup()
    applied = plan_services.applied_coupon_create(customer=sub.customer, coupon=make_coupon(amount_cents=8000))
    invoice = only_invoice(bill(RUN_AT))
    assert amounts(invoice)["coupons_amount"] == D("49.5")
    assert invoice.total_amount == 0
    applied.refresh_from_db()
    # 80 - 49.50 = 30.50 left for the next invoice.
    assert (applied.amount_remaining, applied.status) == (D("30.5"), "active")


def test_recurring_percentage_coupon_limited_to_a_metric_and_counted_down():
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    sub = _usd_invoice_setup()
    coupon = make_coupon(
        code="half_calls",
        coupon_type="percentage",
        percentage_rate=D("50"),
        frequency="recurring",
        frequency_duration=2,
        limited_billable_metrics=True,
        billable_metric_codes=["api_calls"],
    )
    applied = plan_services.applied_coupon_create(customer=sub.customer, coupon=coupon)
    invoice = only_invoice(bill(RUN_AT))
    # Only the 0.50 charge fee: 50% -> 0.25; base 49.25; VAT 9.85; total 59.10
    assert amounts(invoice)["coupons_amount"] == D("0.25")
    assert amounts(invoice)["taxes_amount"] == D("9.85")
    assert invoice.total_amount == D("59.1")
    fee = invoice.fees.get(fee_type=FeeType.CHARGE)
    assert fee.precise_coupons_amount == D("0.25")
    applied.refresh_from_db()
    assert (applied.frequency_duration_remaining, applied.status) == (1, "active")


def test_taxes_are_rounded_once_per_rate_not_per_fee():
    calls, gb = metric("api_calls"), metric("gb", aggregation_type="sum_agg", field_name="gb")
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    plan = make_plan(
        amount_cents=0,
        charges=[standard_charge(amount="0.03"), standard_charge("gb", amount="0.03")],
    )
    assert calls and gb
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 5)])
    events(sub, [utc(2024, 1, 5)], code="gb", gb=1)
    invoice = only_invoice(bill(RUN_AT))
    # Per fee: 0.03 x 20% = 0.006 -> 0.01 each, 0.02 in all; on the sum: 0.06 x 20% = 0.012 -> 0.01.
    assert amounts(invoice)["taxes_amount"] == D("0.01")
    assert [fee.taxes_precise_amount for fee in invoice.fees.filter(fee_type="charge")] == [D("0.006")] * 2


def test_plan_and_charge_taxes_win_over_the_organization_default():
    make_tax(code="vat_20", rate="20", applied_to_organization=True)
    make_tax(code="reduced", rate="5.5")
    make_tax(code="digital", rate="10")
    plan = make_plan(
        amount_cents=10000, tax_codes=["reduced"], charges=[standard_charge(amount="1", tax_codes=["digital"])]
    )
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 5)] * 3)
    invoice = only_invoice(bill(RUN_AT))
    taxes = {t.tax_code: (t.fees_amount, t.amount) for t in invoice.applied_taxes.all()}
    # Subscription fee 100 at 5.5% = 5.50; the charge 3 at 10% = 0.30.
    assert taxes == {"reduced": (D("100"), D("5.5")), "digital": (D("3"), D("0.3"))}
    assert invoice.total_amount == D("108.8")


def test_jpy_has_no_minor_unit():
    make_tax(code="jct", rate="10", applied_to_organization=True)
    plan = make_plan(code="jp", amount_cents=4900, amount_currency="JPY", charges=[standard_charge(amount="0.5")])
    sub = subscribe(plan=plan, customer=make_customer(external_id="jp", timezone="UTC"))
    events(sub, [utc(2024, 1, 5)] * 3)
    invoice = only_invoice(bill(RUN_AT))
    charge = invoice.fees.get(fee_type=FeeType.CHARGE)
    # 3 x 0.5 = 1.5 yen -> 2; fees 4902; 10% = 490.2 -> 490; total 5392
    assert (charge.precise_amount, charge.amount) == (D("1.5"), D("2"))
    assert amounts(invoice)["taxes_amount"] == D("490")
    assert invoice.total_amount == D("5392")
    assert invoice.currency == "JPY"


def test_bhd_has_three_decimals():
    make_tax(code="vat_5", rate="5", applied_to_organization=True)
    plan = make_plan(code="bh", amount_cents=12345, amount_currency="BHD", charges=[standard_charge(amount="0.0125")])
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 5)] * 3)
    invoice = only_invoice(bill(RUN_AT))
    # 12.345 + (3 x 0.0125 = 0.0375 -> 0.038) = 12.383; 5% = 0.61915 -> 0.619; total 13.002
    assert invoice.fees.get(fee_type=FeeType.CHARGE).amount == D("0.038")
    assert amounts(invoice)["fees_amount"] == D("12.383")
    assert amounts(invoice)["taxes_amount"] == D("0.619")
    assert invoice.total_amount == D("13.002")


def test_a_coupon_in_another_currency_never_applies():
    sub = _usd_invoice_setup()
    AppliedCoupon.objects.create(
        customer=sub.customer,
        coupon=make_coupon(code="eur", amount_cents=500, amount_currency="EUR"),
        amount=D("5"),
        amount_currency="EUR",
        amount_remaining=D("5"),
        frequency="once",
    )
    invoice = only_invoice(bill(RUN_AT))
    assert invoice.coupons_amount == 0
