"""lago-python-client 1.55.0, unchanged, against a live Tollgate: credit notes."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.credit_note import CreditNote, CreditNoteEstimate, Item, Items

from tests.factories.credit_notes import fee_of, make_invoice, tax
from tests.factories.customers import make_api_key, make_customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lago(live_server) -> Client:
    return Client(api_key=make_api_key().raw, api_url=live_server.url)


def test_credit_notes_through_the_lago_client(lago, live_server):
    # JPY: one fee of 1,000 with 10% tax (total 1,100), all paid.
    invoice = make_invoice(
        customer=make_customer(external_id="lago-cn"),
        currency="JPY",
        fees=[{"amount": "1000", "taxes": [tax("jp_10", "10")]}],
        paid="1100",
    )
    fee_id = str(fee_of(invoice).pk)
    items = Items(__root__=[Item(fee_id=fee_id, amount_cents=333)])

    estimate = lago.credit_notes.estimate(CreditNoteEstimate(invoice_id=str(invoice.pk), items=items))
    # 333 + 33.3 -> 33 tax = 366.
    assert (estimate.max_creditable_amount_cents, estimate.taxes_amount_cents) == (366, 33)

    created = lago.credit_notes.create(
        CreditNote(
            invoice_id=str(invoice.pk),
            reason="duplicated_charge",
            credit_amount_cents=66,
            refund_amount_cents=300,
            items=items,
        )
    )
    assert (created.number, created.total_amount_cents, created.currency) == (f"{invoice.number}-CN001", 366, "JPY")
    assert (created.credit_status, created.refund_status, created.balance_amount_cents) == ("available", "pending", 66)
    assert created.items.__root__[0].fee.lago_id == fee_id
    assert created.applied_taxes.__root__[0].amount_cents == 33
    assert created.customer.external_id == "lago-cn"

    found = lago.credit_notes.find(created.lago_id)
    listed = lago.credit_notes.find_all({"external_customer_id": "lago-cn"})
    assert found.lago_id == created.lago_id
    assert [note.lago_id for note in listed["credit_notes"]] == [created.lago_id]
    assert listed["meta"]["total_count"] == 1

    downloaded = lago.credit_notes.download(created.lago_id)
    assert downloaded.file_url.startswith(f"{live_server.url}/api/v1/documents/")

    voided = lago.credit_notes.void(created.lago_id)
    assert (voided.credit_status, voided.balance_amount_cents) == ("voided", 0)

    with pytest.raises(LagoApiError) as again:
        lago.credit_notes.void(created.lago_id)
    assert again.value.status_code == 405
    with pytest.raises(LagoApiError) as too_much:
        lago.credit_notes.create(
            CreditNote(
                invoice_id=str(invoice.pk),
                reason="other",
                credit_amount_cents=800,
                items=Items(__root__=[Item(fee_id=fee_id, amount_cents=668)]),
            )
        )
    assert too_much.value.status_code == 422
