"""Credit notes (service level): amounts computed by hand in USD, JPY and BHD, what is left to
credit and to refund, numbering, voiding, and consumption by the customer's next invoices."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from billing_project.money import from_cents
from invoicing import credit_notes as cn
from invoicing import services
from invoicing.errors import InvoicingError, NotAllowedError, NotFoundError
from invoicing.models import Credit, CreditNote, CreditStatus, InvoiceEvent, InvoiceStatus, RefundStatus
from tests.concurrency import race
from tests.factories.credit_notes import fee_of, make_credit_note, make_invoice, tax
from tests.factories.customers import make_customer

pytestmark = pytest.mark.django_db

D = Decimal


def codes(error: InvoicingError) -> dict:
    return error.details or {}


# --- Amounts --------------------------------------------------------------------------------------


def test_usd_items_taxed_per_rate_and_rounded_once():
    vat, local = tax("vat_20", "20"), tax("local_5_5", "5.5")
    invoice = make_invoice(fees=[{"amount": "100.00", "taxes": [vat]}, {"amount": "50.00", "taxes": [vat, local]}])
    # Invoice: vat on 150.00 = 30.00, local on 50.00 = 2.75, total 182.75.
    assert invoice.total_amount == D("182.75")

    note = make_credit_note(
        invoice=invoice, items=[(fee_of(invoice, 0), "33.33"), (fee_of(invoice, 1), "10.01")], actor="api:test"
    )

    # vat: 43.34 * 20% = 8.668 -> 8.67; local: 10.01 * 5.5% = 0.550550 -> 0.55 (each rounded once).
    taxes = {t.tax_code: (t.base_amount, t.amount) for t in note.applied_taxes.all()}
    assert taxes == {"vat_20": (D("43.34"), D("8.67")), "local_5_5": (D("10.01"), D("0.55"))}
    assert note.sub_total_excluding_taxes_amount == D("43.34")
    assert note.taxes_amount == D("9.22")
    assert note.total_amount == note.credit_amount == note.balance_amount == D("52.56")
    assert note.refund_amount == 0
    # 20% on all items + 5.5% on 10.01 / 43.34 of them = 20 + 1.27030... = 21.2703
    assert note.taxes_rate == D("21.2703")
    assert (note.credit_status, note.refund_status) == (CreditStatus.AVAILABLE, None)
    assert note.number == f"{invoice.number}-CN001"
    assert note.sequential_id == 1
    event = InvoiceEvent.objects.get(credit_note=note)
    assert (event.kind, event.actor, event.invoice_id) == ("credit_note_created", "api:test", invoice.pk)
    assert event.payload["total_amount_cents"] == 5256


def test_jpy_amounts_have_no_minor_unit():
    consumption, reduced = tax("jp_10", "10"), tax("jp_8", "8")
    invoice = make_invoice(
        currency="JPY", fees=[{"amount": "1000", "taxes": [consumption]}, {"amount": "555", "taxes": [reduced]}]
    )
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "333"), (fee_of(invoice, 1), "111")])

    # 333 * 10% = 33.3 -> 33; 111 * 8% = 8.88 -> 9; 444 + 42 = 486.
    assert {t.tax_code: t.amount for t in note.applied_taxes.all()} == {"jp_10": D("33"), "jp_8": D("9")}
    assert (note.sub_total_excluding_taxes_amount, note.taxes_amount, note.total_amount) == (D(444), D(42), D(486))


def test_bhd_three_decimals_half_up():
    vat, levy = tax("bh_vat_10", "10"), tax("bh_levy_5", "5")
    invoice = make_invoice(
        currency="BHD", fees=[{"amount": "10.000", "taxes": [vat]}, {"amount": "2.500", "taxes": [vat, levy]}]
    )
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice, 0), "3.333"), (fee_of(invoice, 1), "1.255")])

    # vat: 4.588 * 10% = 0.4588 -> 0.459; levy: 1.255 * 5% = 0.06275 -> 0.063 (half-up).
    assert {t.tax_code: t.amount for t in note.applied_taxes.all()} == {
        "bh_vat_10": D("0.459"),
        "bh_levy_5": D("0.063"),
    }
    assert note.taxes_amount == D("0.522")
    assert note.total_amount == D("5.110")


def test_coupons_are_taken_off_pro_rata_before_taxes():
    vat = tax("vat_20", "20")
    # Fee 100.00 with a 10.00 coupon share: invoice base 90.00, vat 18.00, total 108.00.
    invoice = make_invoice(fees=[{"amount": "100.00", "coupons": "10.00", "taxes": [vat]}])
    assert invoice.total_amount == D("108.00")

    first = make_credit_note(invoice=invoice, items=[(fee_of(invoice), "33.33")])
    # coupon share: 10 * 33.33 / 100 = 3.333 -> 3.33; base 29.997 -> vat 5.9994 -> 6.00.
    assert first.coupons_adjustment_amount == D("3.33")
    assert first.sub_total_excluding_taxes_amount == D("30.00")
    assert first.taxes_amount == D("6.00")
    assert first.total_amount == D("36.00")

    last = make_credit_note(invoice=invoice, items=[(fee_of(invoice), "66.67")])
    # The last note takes the remainders: coupons 10.00 - 3.33 = 6.67, vat 18.00 - 6.00 = 12.00.
    assert last.coupons_adjustment_amount == D("6.67")
    assert last.taxes_amount == D("12.00")
    assert last.total_amount == D("72.00")
    assert first.total_amount + last.total_amount == invoice.total_amount


def test_the_last_note_absorbs_tax_rounding_so_notes_add_up_to_the_invoice():
    vat = tax("vat_10", "10")
    # Three fees of 0.05 at 10%: the invoice's tax is 0.015 -> 0.02; total 0.17.
    invoice = make_invoice(fees=[{"amount": "0.05", "taxes": [vat]} for _ in range(3)])
    assert invoice.total_amount == D("0.17")

    notes = [make_credit_note(invoice=invoice, items=[(fee_of(invoice, i), "0.05")]) for i in range(3)]

    # Each alone: 0.005 -> 0.01; the last takes 0.02 - 0.01 - 0.01 = 0.00.
    assert [n.taxes_amount for n in notes] == [D("0.01"), D("0.01"), D("0.00")]
    assert sum(n.total_amount for n in notes) == invoice.total_amount
    assert [n.number for n in notes] == [f"{invoice.number}-CN00{i}" for i in (1, 2, 3)]


class TestNotesNeverExceedTheInvoice(HypothesisTestCase):
    """Whatever way an invoice is credited, the notes never add up to more than it charged, and
    crediting it all adds up to exactly what it charged."""

    @given(
        amounts=st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=3),
        splits=st.lists(st.integers(min_value=1, max_value=99), min_size=1, max_size=3),
        currency=st.sampled_from(["USD", "JPY", "BHD"]),
        coupon_percent=st.integers(min_value=0, max_value=100),
    )
    @example(amounts=[1, 46], splits=[46, 46, 9], currency="USD", coupon_percent=74)
    def test_notes_add_up(self, amounts, splits, currency, coupon_percent):
        vat, reduced = tax("vat_19", "19"), tax("reduced_7", "7")
        invoice = make_invoice(
            currency=currency,
            fees=[
                {
                    "amount": from_cents(cents, currency),
                    # Each fee's share of a coupon, in whole minor units as the billing run rounds it.
                    "coupons": from_cents(cents * coupon_percent // 100, currency),
                    "taxes": [vat] if i % 2 == 0 else [vat, reduced],
                }
                for i, cents in enumerate(amounts)
            ],
        )
        fees = [fee_of(invoice, i) for i in range(len(amounts))]
        left = dict(enumerate(amounts))
        for percent in splits:
            pieces = [(i, min(left[i], amounts[i] * percent // 100)) for i in range(len(fees))]
            pieces = [(i, cents) for i, cents in pieces if cents > 0]
            if pieces:
                try:
                    make_credit_note(invoice=invoice, items=[(fees[i], from_cents(c, currency)) for i, c in pieces])
                except InvoicingError as error:
                    # A minor unit whose coupon share rounds to all of it credits nothing.
                    assert codes(error) == {"base": ["total_amount_must_be_positive"]}
                    continue
                for i, cents in pieces:
                    left[i] -= cents
            assert sum(n.total_amount for n in CreditNote.objects.filter(invoice=invoice)) <= invoice.total_amount
        rest = [(fees[i], from_cents(cents, currency)) for i, cents in left.items() if cents > 0]
        if rest:
            try:
                make_credit_note(invoice=invoice, items=rest)
            except InvoicingError as error:
                # The last minor unit of a fee whose taxes (or coupon) earlier notes' rounding covered.
                assert codes(error) == {"base": ["total_amount_must_be_positive"]}
        total = sum(n.total_amount for n in CreditNote.objects.filter(invoice=invoice))
        assert total == (invoice.total_amount if any(amounts) else 0)


# --- What is left to credit and to refund ---------------------------------------------------------


def test_over_credit_of_a_fee_is_refused_and_leaves_nothing():
    invoice = make_invoice(fees=[{"amount": "100.00"}])
    fee = fee_of(invoice)
    make_credit_note(invoice=invoice, items=[(fee, "60.00")])

    with pytest.raises(InvoicingError) as refused:
        make_credit_note(invoice=invoice, items=[(fee, "40.01")])

    assert codes(refused.value) == {"amount_cents": ["higher_than_remaining_fee_amount"]}
    assert CreditNote.objects.filter(invoice=invoice).count() == 1
    # Exactly what is left is fine, and numbering has no gap after the refusal.
    assert make_credit_note(invoice=invoice, items=[(fee, "40.00")]).number.endswith("-CN002")


def test_one_fee_twice_in_a_note_counts_both_items():
    invoice = make_invoice(fees=[{"amount": "10.00"}])
    fee = fee_of(invoice)
    with pytest.raises(InvoicingError) as refused:
        make_credit_note(invoice=invoice, items=[(fee, "6.00"), (fee, "4.01")])
    assert codes(refused.value) == {"amount_cents": ["higher_than_remaining_fee_amount"]}


def test_a_fee_of_another_invoice_is_not_found():
    invoice = make_invoice(fees=[{"amount": "10.00"}])
    other = make_invoice(fees=[{"amount": "10.00"}])
    with pytest.raises(NotFoundError) as missing:
        make_credit_note(invoice=invoice, items=[(fee_of(other), "1.00")])
    assert missing.value.code == "fee_not_found"


def test_negative_or_zero_items_are_refused():
    invoice = make_invoice(fees=[{"amount": "10.00"}])
    with pytest.raises(InvoicingError) as negative:
        make_credit_note(invoice=invoice, items=[(fee_of(invoice), "-1.00")])
    assert codes(negative.value) == {"amount_cents": ["invalid_value"]}
    with pytest.raises(InvoicingError) as zero:
        make_credit_note(invoice=invoice, items=[(fee_of(invoice), "0")])
    assert codes(zero.value) == {"base": ["total_amount_must_be_positive"]}


def test_refund_is_never_more_than_what_was_paid():
    vat = tax("vat_20", "20")
    # Total 120.00, of which 50.00 paid.
    invoice = make_invoice(fees=[{"amount": "100.00", "taxes": [vat]}], paid="50.00")
    fee = fee_of(invoice)

    with pytest.raises(InvoicingError) as too_much:
        make_credit_note(invoice=invoice, items=[(fee, "100.00")], credit_amount=D("69.99"), refund_amount=D("50.01"))
    assert codes(too_much.value) == {"refund_amount_cents": ["higher_than_remaining_invoice_amount"]}

    note = make_credit_note(invoice=invoice, items=[(fee, "50.00")], credit_amount=D("10.00"), refund_amount=D("50.00"))
    assert (note.total_amount, note.credit_amount, note.refund_amount) == (D("60.00"), D("10.00"), D("50.00"))
    assert (note.credit_status, note.refund_status, note.balance_amount) == ("available", "pending", D("10.00"))

    # Everything paid has been refunded already.
    with pytest.raises(InvoicingError) as again:
        make_credit_note(invoice=invoice, items=[(fee, "1.00")], refund_amount=D("1.20"))
    assert codes(again.value) == {"refund_amount_cents": ["higher_than_remaining_invoice_amount"]}


def test_refund_of_an_unpaid_invoice_is_refused():
    invoice = make_invoice(fees=[{"amount": "100.00"}])
    with pytest.raises(InvoicingError) as refused:
        make_credit_note(invoice=invoice, items=[(fee_of(invoice), "100.00")], refund_amount=D("100.00"))
    assert codes(refused.value) == {"refund_amount_cents": ["cannot_refund_unpaid_invoice"]}


def test_refund_only_note_has_no_credit_status():
    invoice = make_invoice(fees=[{"amount": "100.00"}], paid="100.00")
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice), "25.00")], refund_amount=D("25.00"))
    assert (note.credit_status, note.refund_status, note.balance_amount) == (None, RefundStatus.PENDING, 0)


def test_credit_plus_refund_must_match_the_items_within_one_minor_unit():
    vat = tax("vat_20", "20")
    invoice = make_invoice(fees=[{"amount": "100.00", "taxes": [vat]}])
    fee = fee_of(invoice)
    with pytest.raises(InvoicingError) as mismatch:
        make_credit_note(invoice=invoice, items=[(fee, "10.00")], credit_amount=D("10.00"))
    assert codes(mismatch.value) == {"base": ["does_not_match_item_amounts"]}

    # 10.00 + 20% = 12.00; a caller off by one cent is absorbed by the credit (as Lago).
    note = make_credit_note(invoice=invoice, items=[(fee, "10.00")], credit_amount=D("11.99"))
    assert note.credit_amount == note.total_amount == D("12.00")


def test_only_finalized_invoices_are_credited():
    for status in (InvoiceStatus.DRAFT, InvoiceStatus.VOIDED):
        invoice = make_invoice(fees=[{"amount": "10.00"}], status=status)
        with pytest.raises(NotAllowedError) as refused:
            make_credit_note(invoice=invoice)
        assert (refused.value.status, refused.value.code) == (405, "invalid_type_or_status")


def test_reason_is_one_of_lagos():
    invoice = make_invoice(fees=[{"amount": "10.00"}])
    with pytest.raises(InvoicingError) as refused:
        make_credit_note(invoice=invoice, reason="changed_my_mind")
    assert codes(refused.value) == {"reason": ["value_is_invalid"]}
    assert not CreditNote.objects.exists()


# --- Voiding ---------------------------------------------------------------------------------------


def test_void_cancels_the_balance_once():
    invoice = make_invoice(fees=[{"amount": "80.00"}])
    note = make_credit_note(invoice=invoice, items=[(fee_of(invoice), "30.00")])

    voided = cn.credit_note_void(credit_note=note, actor="admin:ann")

    assert (voided.credit_status, voided.balance_amount, voided.credit_amount) == ("voided", 0, D("30.00"))
    assert voided.voided_at is not None
    assert InvoiceEvent.objects.filter(credit_note=note, kind="credit_note_voided", actor="admin:ann").exists()
    with pytest.raises(NotAllowedError) as again:
        cn.credit_note_void(credit_note=note, actor="admin:ann")
    assert again.value.code == "no_voidable_amount"
    assert cn.credit_notes_available(customer=invoice.customer, currency="USD") == 0


def test_a_voided_note_that_gave_nothing_no_longer_counts():
    invoice = make_invoice(fees=[{"amount": "80.00"}])
    fee = fee_of(invoice)
    cn.credit_note_void(credit_note=make_credit_note(invoice=invoice, items=[(fee, "80.00")]), actor="t")
    # Its credit was never used: the whole fee can be credited again (numbering goes on).
    assert make_credit_note(invoice=invoice, items=[(fee, "80.00")]).number.endswith("-CN002")


def test_a_voided_note_whose_credit_was_partly_used_keeps_counting():
    customer = make_customer(external_id="cust_partly")
    invoice = make_invoice(customer=customer, fees=[{"amount": "80.00"}])
    fee = fee_of(invoice)
    note = make_credit_note(invoice=invoice, items=[(fee, "80.00")])
    later = make_invoice(customer=customer, fees=[{"amount": "20.00"}])
    assert cn.credit_notes_apply(invoice=later, amount=D("20.00")) == D("20.00")
    cn.credit_note_void(credit_note=note, actor="t")

    with pytest.raises(InvoicingError) as refused:
        make_credit_note(invoice=invoice, items=[(fee, "0.01")])
    assert codes(refused.value) == {"amount_cents": ["higher_than_remaining_fee_amount"]}


def test_a_consumed_note_cannot_be_voided():
    customer = make_customer(external_id="cust_consumed")
    invoice = make_invoice(customer=customer, fees=[{"amount": "10.00"}])
    note = make_credit_note(invoice=invoice)
    cn.credit_notes_apply(invoice=make_invoice(customer=customer, fees=[{"amount": "50.00"}]), amount=D("50.00"))
    note.refresh_from_db()
    assert note.credit_status == CreditStatus.CONSUMED
    with pytest.raises(NotAllowedError):
        cn.credit_note_void(credit_note=note, actor="t")


# --- Consumption -----------------------------------------------------------------------------------


def test_consumption_across_two_later_invoices_oldest_note_first():
    customer = make_customer(external_id="cust_consume")
    first_invoice = make_invoice(customer=customer, fees=[{"amount": "30.00"}, {"amount": "50.00"}])
    older = make_credit_note(invoice=first_invoice, items=[(fee_of(first_invoice, 0), "30.00")])
    newer = make_credit_note(invoice=first_invoice, items=[(fee_of(first_invoice, 1), "50.00")])
    make_credit_note(invoice=make_invoice(customer=customer, currency="EUR", fees=[{"amount": "9.00"}]))
    assert cn.credit_notes_available(customer=customer, currency="USD") == D("80.00")

    # Next invoice is 40.00: 30.00 from the older note (consumed), 10.00 from the newer.
    second = make_invoice(customer=customer, fees=[{"amount": "40.00"}])
    assert cn.credit_notes_apply(invoice=second, amount=D("40.00")) == D("40.00")
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.balance_amount, older.credit_status) == (0, "consumed")
    assert (newer.balance_amount, newer.credit_status) == (D("40.00"), "available")
    assert sorted((c.credit_note_id == older.pk, c.amount, c.before_taxes) for c in second.credits.all()) == [
        (False, D("10.00"), False),
        (True, D("30.00"), False),
    ]

    # The one after is 100.00: the 40.00 left on the newer note covers part of it.
    third = make_invoice(customer=customer, fees=[{"amount": "100.00"}])
    assert cn.credit_notes_apply(invoice=third, amount=D("100.00")) == D("40.00")
    newer.refresh_from_db()
    assert (newer.balance_amount, newer.credit_status) == (0, "consumed")
    assert cn.credit_notes_available(customer=customer, currency="USD") == 0
    assert cn.credit_notes_apply(invoice=third, amount=D("60.00")) == 0
    # The EUR note is untouched: credit is consumed in its own currency only.
    assert cn.credit_notes_available(customer=customer, currency="EUR") == D("9.00")
    # The ledger: what each note gave is its credit minus its balance.
    for note in (older, newer):
        assert sum(c.amount for c in Credit.objects.filter(credit_note=note)) == note.credit_amount


def test_recredit_gives_back_what_a_voided_invoice_consumed():
    customer = make_customer(external_id="cust_recredit")
    note = make_credit_note(invoice=make_invoice(customer=customer, fees=[{"amount": "30.00"}]))
    later = make_invoice(customer=customer, fees=[{"amount": "20.00"}])
    cn.credit_notes_apply(invoice=later, amount=D("20.00"))
    note.refresh_from_db()
    assert note.balance_amount == D("10.00")

    services.invoice_void(invoice=later, actor="test")

    note.refresh_from_db()
    assert (note.balance_amount, note.credit_status) == (D("30.00"), "available")
    # The ledger keeps what the voided invoice consumed (its credit_notes_amount stays true).
    assert [c.amount for c in later.credits.all()] == [D("20.00")]
    assert later.events.get(kind="voided").payload["recredited_amount_cents"] == 2000
    # The credit given back is consumed again by the next invoice, once.
    again = make_invoice(customer=customer, fees=[{"amount": "50.00"}])
    assert cn.credit_notes_apply(invoice=again, amount=D("50.00")) == D("30.00")


def test_unused_subscription_fee_is_credited_with_its_taxes():
    vat = tax("vat_20", "20")
    invoice = make_invoice(fees=[{"amount": "30.00", "taxes": [vat], "fee_type": "subscription"}])
    fee = fee_of(invoice)

    # 19 unused days of 30 at 1.00 a day, precisely: 19.00; vat 3.80; credited 22.80.
    note = cn.credit_note_create_for_unused_subscription_fee(fee=fee, amount=D("19.0000001"), actor="system:upgrade")

    assert note is not None
    assert (note.reason, note.credit_amount, note.refund_amount, note.taxes_amount) == (
        "order_change",
        D("22.80"),
        0,
        D("3.80"),
    )
    item = note.items.get()
    assert (item.amount, item.precise_amount) == (D("19.00"), D("19.0000001"))
    # More than what is left is capped at it; nothing left gives no note.
    capped = cn.credit_note_create_for_unused_subscription_fee(fee=fee, amount=D("50"), actor="system:upgrade")
    assert capped.items.get().amount == D("11.00")
    assert cn.credit_note_create_for_unused_subscription_fee(fee=fee, amount=D("1"), actor="s") is None
    assert cn.credit_note_create_for_unused_subscription_fee(fee=fee, amount=D("0"), actor="s") is None


def test_estimate_matches_what_create_then_issues():
    vat = tax("vat_20", "20")
    invoice = make_invoice(fees=[{"amount": "100.00", "coupons": "10.00", "taxes": [vat]}], paid="20.00")
    fee = fee_of(invoice)

    estimate = cn.credit_note_estimate(invoice=invoice, items=[(fee, D("33.33"))])

    # Coupons 10.00 x 33.33 / 100 = 3.333 -> 3.33; base 33.33 - 3.33 = 30.00; VAT 20% = 6.00;
    # creditable 36.00; refundable at most what was paid, 20.00.
    figures = estimate.figures
    assert (estimate.max_creditable, estimate.max_refundable) == (D("36.00"), D("20.00"))
    assert (figures.coupons_adjustment, figures.precise_coupons_adjustment) == (D("3.33"), D("3.333"))
    assert (figures.sub_total_excluding_taxes, figures.taxes_amount) == (D("30.00"), D("6.00"))
    assert [(item.fee, item.amount) for item in figures.items] == [(fee, D("33.33"))]
    assert [(line.tax_code, line.base_amount, line.amount) for line in figures.taxes] == [
        ("vat_20", D("30.00"), D("6.00"))
    ]
    note = make_credit_note(invoice=invoice, items=[(fee, "33.33")])
    assert note.total_amount == D("36.00")
    assert not CreditNote.objects.exclude(pk=note.pk).exists()


# --- Concurrency -----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_invoices_consuming_at_once_never_over_consume():
    from django.db import transaction

    customer = make_customer(external_id="cust_race")
    source = make_invoice(customer=customer, fees=[{"amount": "60.00"}, {"amount": "40.00"}])
    make_credit_note(invoice=source, items=[(fee_of(source, 0), "60.00")])
    make_credit_note(invoice=source, items=[(fee_of(source, 1), "40.00")])
    invoices = iter([make_invoice(customer=customer, fees=[{"amount": "70.00"}]) for _ in range(2)])
    lock = threading.Lock()

    def consume():
        with lock:
            invoice = next(invoices)
        with transaction.atomic():
            return cn.credit_notes_apply(invoice=invoice, amount=D("70.00"))

    results = race(consume)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(results) == [D("30.00"), D("70.00")]
    assert sum(c.amount for c in Credit.objects.all()) == D("100.00")
    assert set(CreditNote.objects.values_list("balance_amount", "credit_status")) == {(D("0"), "consumed")}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_notes_on_one_invoice_never_over_credit_and_number_without_gaps():
    invoice = make_invoice(fees=[{"amount": "100.00"}])
    fee = fee_of(invoice)

    results = race(lambda: make_credit_note(invoice=invoice, items=[(fee, "30.00")]), count=4)

    made = [r for r in results if isinstance(r, CreditNote)]
    refused = [r for r in results if isinstance(r, InvoicingError)]
    assert (len(made), len(refused)) == (3, 1), results
    assert codes(refused[0]) == {"amount_cents": ["higher_than_remaining_fee_amount"]}
    assert sorted(n.number for n in made) == [f"{invoice.number}-CN00{i}" for i in (1, 2, 3)]


def test_the_pdf_is_rendered_after_commit(django_capture_on_commit_callbacks):
    invoice = make_invoice(fees=[{"amount": "10.00"}])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        note = make_credit_note(invoice=invoice)
    assert len(callbacks) == 1
    note.refresh_from_db()
    assert note.file.name
    assert InvoiceEvent.objects.filter(credit_note=note, kind="credit_note_pdf_generated").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_voiding_while_an_invoice_consumes_gives_each_credit_once():
    from django.db import transaction

    customer = make_customer(external_id="cust_void_race")
    note = make_credit_note(invoice=make_invoice(customer=customer, fees=[{"amount": "100.00"}]))
    later = make_invoice(customer=customer, fees=[{"amount": "70.00"}])
    jobs = iter(["void", "apply"])
    lock = threading.Lock()

    def work():
        with lock:
            job = next(jobs)
        if job == "void":
            return cn.credit_note_void(credit_note=note, actor="t").credit_status
        with transaction.atomic():
            return cn.credit_notes_apply(invoice=later, amount=D("70.00"))

    results = race(work)

    note.refresh_from_db()
    applied = sum(c.amount for c in Credit.objects.filter(credit_note=note))
    # Either the void came first (nothing applied) or the invoice took 70.00 and the void the rest.
    assert "voided" in results and applied in (D(0), D("70.00")), results
    assert (note.credit_status, note.balance_amount) == ("voided", 0)
