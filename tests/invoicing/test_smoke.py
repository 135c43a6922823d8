from decimal import Decimal

import pytest

from invoicing.models import FeeType, InvoiceStatus
from tests.factories.invoicing import bill, events, only_invoice, subscribe, utc
from tests.factories.plans import make_plan, standard_charge


@pytest.mark.django_db
def test_arrears_monthly_standard_charge():
    plan = make_plan(amount_cents=4900, charges=[standard_charge(amount="0.05")])
    sub = subscribe(plan=plan)
    events(sub, [utc(2024, 1, 5)] * 10 + [utc(2024, 2, 1)])
    invoice = only_invoice(bill(utc(2024, 2, 1, 0, 10)))
    assert invoice.status == InvoiceStatus.FINALIZED
    fees = {f.fee_type: f for f in invoice.fees.all()}
    assert fees[FeeType.SUBSCRIPTION].amount == Decimal("49")
    assert fees[FeeType.CHARGE].amount == Decimal("0.5")
    assert invoice.total_amount == Decimal("49.5")
    assert invoice.number == "TOL-001-001"
    again = bill(utc(2024, 2, 1, 0, 10))
    assert (again.created, again.skipped) == (0, 1)
