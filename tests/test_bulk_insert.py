"""billing_project.bulk.insert_together writes exactly what Django's bulk_create writes.

insert_together takes a value as it is where Django's own preparation (get_db_prep_save on
PostgreSQL) would hand it unchanged, and prepares every other value with the field. These tests
insert the same rows both ways and compare what the database stored, column by column: values of
the expected types (the fast path), values Django converts (a str for a Decimal, an int for a
bool, a str for a UUID, a float), JSON, auto_now stamps and expressions (compiled by Django)."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_project import bulk
from billing_project.bulk import insert_together
from invoicing.models import Fee, FeePaymentStatus, FeeType, Invoice, InvoiceEvent
from tests.factories.customers import make_customer

pytestmark = pytest.mark.django_db

D = Decimal
# Columns both ways must agree on (ids, the invoice and the insert instant differ by design).
_SKIP = {"id", "invoice_id", "created_at", "updated_at"}


def _invoice(customer: Any) -> Invoice:
    day = date(2024, 2, 1)
    invoice = Invoice(customer=customer, currency="EUR", issuing_date=day, payment_due_date=day, number="TOL-DRAFT")
    invoice.save()
    return invoice


def _stored(invoice: Invoice) -> list[dict[str, Any]]:
    rows = Fee.objects.filter(invoice=invoice).order_by("description").values()
    return [{key: value for key, value in row.items() if key not in _SKIP} for row in rows]


def _fee(invoice: Invoice, n: int, **values: Any) -> Fee:
    return Fee(invoice=invoice, fee_type=FeeType.CHARGE, currency="EUR", description=f"{n:03d}", **values)


def _both_ways(customer: Any, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    fast, django = _invoice(customer), _invoice(customer)
    insert_together([(Fee, [_fee(fast, n, **row) for n, row in enumerate(rows)])])
    Fee.objects.bulk_create([_fee(django, n, **row) for n, row in enumerate(rows)])
    return _stored(fast), _stored(django)


# PostgreSQL stores no NUL character in text or jsonb (either way refused alike).
def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=max_size)


amounts = st.decimals(min_value=D("-1e9"), max_value=D("1e9"), allow_nan=False, allow_infinity=False, places=6)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | texts(8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts(5), children, max_size=3),
    max_leaves=8,
)
fee_rows = st.fixed_dictionaries(
    {
        "units": amounts,
        "amount": amounts.map(lambda value: value.quantize(D("0.01"))),
        "precise_amount": amounts,
        "events_count": st.integers(0, 2**62),
        "pay_in_advance": st.booleans(),
        "payment_status": st.sampled_from(list(FeePaymentStatus)),
        "from_datetime": st.none() | moments,
        "invoice_display_name": texts(255),
        "amount_details": st.dictionaries(texts(6), json_values, max_size=4),
        "grouped_by": st.dictionaries(texts(6), st.none() | texts(6), max_size=2),
    }
)


@pytest.mark.postgres  # insert_together's own statement is PostgreSQL's (elsewhere it is bulk_create)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], max_examples=40)
@given(rows=st.lists(fee_rows, min_size=1, max_size=4))
def test_random_rows_stored_as_bulk_create_stores_them(rows):
    with transaction.atomic():  # an example's failure leaves the next one a usable transaction
        customer = make_customer(external_id=f"bulk_{uuid.uuid4().hex[:8]}")
        fast, django = _both_ways(customer, rows)
    assert fast == django
    assert len(fast) == len(rows)


@pytest.mark.postgres
def test_values_django_converts_are_converted_the_same_way():
    customer = make_customer(external_id="bulk_convert")
    other = make_customer(external_id="bulk_other")
    east = timezone(timedelta(hours=5, minutes=30))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the naive datetime: Django warns, then makes it aware
        fast, django = _both_ways(
            customer,
            [
                {
                    "units": "12.500",  # str for a Decimal
                    "amount": 7,  # int for a Decimal
                    "precise_amount": 0.1,  # float: Django's context, not repr
                    "events_count": True,  # bool for an integer: int(True)
                    "pay_in_advance": 1,  # int for a bool
                    "from_datetime": datetime(2024, 1, 31, 23, 0, tzinfo=east),  # another zone: same instant
                    "to_datetime": datetime(2024, 2, 1, 12, 0),  # naive
                    "payment_status": "succeeded",
                },
                {"units": D("3"), "events_count": 2, "subscription_id": None, "amount_details": {"rate": "0.25"}},
            ],
        )
    assert fast == django
    assert fast[0]["units"] == D("12.5") and fast[0]["amount"] == D("7") and fast[0]["events_count"] == 1
    assert fast[0]["pay_in_advance"] is True
    assert fast[0]["from_datetime"] == datetime(2024, 1, 31, 17, 30, tzinfo=UTC)
    # A foreign key given as the target's str form is prepared by the target field (a UUID).
    event = InvoiceEvent(invoice_id=str(_invoice(other).pk), kind="created", actor="test", payload={"n": "1.5"})
    insert_together([(InvoiceEvent, [event])])
    stored = InvoiceEvent.objects.get(invoice__customer=other)  # its id is the database's (BigAutoField)
    assert stored.invoice.customer == other and stored.payload == {"n": "1.5"}


@pytest.mark.postgres
def test_auto_now_stamps_are_set_and_expressions_go_through_django_compiler():
    customer = make_customer(external_id="bulk_expr")
    invoice = _invoice(customer)
    before = datetime.now(UTC)
    stamped = _fee(invoice, 1, units=D("1"))
    insert_together([(Fee, [stamped])])
    assert stamped.created_at >= before and stamped.updated_at >= before
    assert Fee.objects.get(pk=stamped.pk).created_at == stamped.created_at

    # An expression as a value: the model's rows are compiled by Django (the arrays cannot hold it).
    with_expression = _fee(invoice, 2, units=D("1"), invoice_display_name=Value("from an expression"))
    insert_together([(Fee, [with_expression])])
    assert Fee.objects.get(pk=with_expression.pk).invoice_display_name == "from an expression"


def test_the_fast_path_covers_only_exact_field_classes():
    """A field subclass may prepare values its own way: never taken as it is."""
    if connection.vendor != "postgresql":
        pytest.skip("the statement's columns are PostgreSQL's (SQLite inserts with bulk_create)")
    columns, sql, one_row = bulk._columns(Fee, True)
    by_name = {column.attname: column for column in columns}
    assert by_name["units"].as_is is not None and not by_name["units"].pre_save
    assert by_name["invoice_id"].as_is is not None  # a ForeignKey: its target's (UUID) test
    assert by_name["amount_details"].as_is is None and by_name["amount_details"].pre_save  # JSON: the field's
    assert by_name["created_at"].pre_save  # auto_now_add: stamped by the field
    assert sql.startswith('INSERT INTO "invoicing_fee"') and "(%s)::numeric[]" in sql
    assert one_row.startswith('INSERT INTO "invoicing_fee"') and one_row.endswith(
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
