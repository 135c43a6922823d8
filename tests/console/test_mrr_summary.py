"""MRR read from the per-day summary rows equals MRR computed from the fees, after every kind of
change the triggers watch (a fee on a finalized invoice, a finalization, a void, a re-dated
draft, a deletion). The direct figures are the grouped fee query's (summaries.mrr.fee_rows)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from invoicing import analytics
from invoicing.models import Invoice, InvoiceStatus, MrrDayRow, MrrDirtyDay
from invoicing.summaries import mrr as summary
from tests.console.factories import plan, subscription, subscription_fee
from tests.factories.invoicing import utc

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

TODAY = date(2026, 6, 15)


def _direct(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[date, str], Decimal]:
    """The same selector, reading the fees (the summary's reference)."""
    with monkeypatch.context() as patched:
        patched.setattr(summary, "mrr_rows", _fees_only)
        patched.setattr(analytics, "mrr_rows", _fees_only)
        return {(f.month, f.currency): f.amount for f in analytics.mrr(months=13, today=TODAY)}


def _fees_only(*, first, end, currency=None, external_customer_id=None):
    fees = summary.subscription_fees(currency=currency, external_customer_id=external_customer_id)
    return summary.fee_rows(fees.filter(invoice__issuing_date__gte=first, invoice__issuing_date__lt=end))


def _summary() -> dict[tuple[date, str], Decimal]:
    return {(f.month, f.currency): f.amount for f in analytics.mrr(months=13, today=TODAY)}


def test_summary_follows_every_change(monkeypatch):
    monthly = plan("monthly", "monthly", 10000)
    yearly = plan("yearly", "yearly", 120000)
    sub = subscription("m", monthly)
    first = subscription_fee(sub, "100", issued=date(2026, 5, 1), taxes="20")
    # Read once: the days are summarised and nothing is dirty any more.
    assert _summary() == {(date(2026, 5, 1), "USD"): Decimal("120")}
    assert not MrrDirtyDay.objects.exists() and MrrDayRow.objects.count() == 1

    # A second fee the same day, a yearly fee spread over 12 months, a draft not counted.
    subscription_fee(sub, "100", issued=date(2026, 5, 1))
    subscription_fee(
        subscription("y", yearly), "1200", issued=date(2026, 6, 1), period=(utc(2025, 6, 1), utc(2026, 6, 1))
    )
    draft = subscription_fee(sub, "40", issued=date(2026, 6, 3), status=InvoiceStatus.DRAFT)
    expected = _direct(monkeypatch)
    # May: 120 + 100 monthly + 100 of the yearly fee (its share), June: 100 of the yearly fee.
    assert expected[(date(2026, 5, 1), "USD")] == Decimal("320")
    assert _summary() == expected

    # Finalizing the draft, voiding the first invoice, re-dating nothing else.
    Invoice.objects.filter(pk=draft.pk).update(status=InvoiceStatus.FINALIZED)
    Invoice.objects.filter(pk=first.pk).update(status=InvoiceStatus.VOIDED)
    expected = _direct(monkeypatch)
    assert expected[(date(2026, 5, 1), "USD")] == Decimal("200")
    assert expected[(date(2026, 6, 1), "USD")] == Decimal("140")
    assert _summary() == expected

    # A finalized invoice moved to another day, then deleted with its fees.
    Invoice.objects.filter(pk=draft.pk).update(issuing_date=date(2026, 4, 30))
    assert _summary() == _direct(monkeypatch)
    draft.fees.all().delete()
    Invoice.objects.filter(pk=draft.pk).delete()
    assert _summary() == _direct(monkeypatch)
    assert _summary()[(date(2026, 4, 1), "USD")] == Decimal("100")  # the yearly fee's share only

    # A payment (any other column) marks nothing dirty: the dashboard's reads stay cheap.
    Invoice.objects.filter(status=InvoiceStatus.FINALIZED).update(total_paid_amount=Decimal("1"))
    assert not MrrDirtyDay.objects.exists()


def test_customer_filter_reads_the_fees(monkeypatch):
    sub = subscription("solo", plan("monthly", "monthly", 10000))
    subscription_fee(sub, "100", issued=date(2026, 6, 1))
    subscription_fee(subscription("other", plan("other", "monthly", 5000)), "50", issued=date(2026, 6, 1))
    mine = analytics.mrr(months=1, external_customer_id="solo", today=TODAY)
    assert [(f.month, f.amount) for f in mine] == [(date(2026, 6, 1), Decimal("100"))]
    assert _summary() == {(date(2026, 6, 1), "USD"): Decimal("150")}


def test_a_subscription_fee_reads_its_invoice_alone_however_many_are_finalized():
    """The fee trigger finds its invoice by primary key: one invoice row read per fee, not every
    finalized invoice (0006's `id = ... AND status = 'finalized'` let PL/pgSQL's cached generic
    plan take the status index, on a table without statistics: invoicing 0017). Counted with
    pg_stat_xact_user_tables (this transaction's own reads of invoicing_invoice)."""
    from django.db import connection

    from invoicing.models import Fee, FeeType

    monthly = plan("monthly", "monthly", 10000)
    sub = subscription("m", monthly)
    invoices = [subscription_fee(sub, "10", issued=date(2026, 5, 1)) for _ in range(40)]

    def invoice_rows_read() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
                "WHERE relname = 'invoicing_invoice'"
            )
            return int(cursor.fetchone()[0])

    before, dirty_before = invoice_rows_read(), MrrDirtyDay.objects.count()
    fees = 20  # each its own statement: past the 5 custom plans, PL/pgSQL's generic plan serves
    for n in range(fees):
        Fee.objects.create(
            invoice=invoices[n], subscription=sub, fee_type=FeeType.SUBSCRIPTION, currency="USD", amount=1
        )
    read = invoice_rows_read() - before
    # Each insert: the trigger's one row, and the deferred foreign key check is at commit (not here).
    assert read <= fees, read
    # Every fee still marks its finalized invoice's day, once.
    added = MrrDirtyDay.objects.count() - dirty_before
    assert added == fees and MrrDirtyDay.objects.filter(issuing_date=date(2026, 5, 1)).count() >= fees
