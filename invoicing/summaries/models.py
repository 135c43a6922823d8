"""MRR's grouped rows per issuing day, and the days whose rows are stale.

`MrrDayRow` holds exactly what analytics.mrr's grouped query gives for one issuing day
(subscription fees of finalized invoices, grouped by currency, plan interval, billing time and,
for the long plans, the fee's period). PostgreSQL triggers (migration 0006) write a
`MrrDirtyDay` row in the same transaction as any change that can move those figures: an invoice
inserted, finalized, voided, deleted or re-dated, a subscription fee written on a finalized
invoice. Readers first recompute the dirty days (summaries.mrr_rows), so the summary is the
direct query's answer, never an approximation.
"""

from __future__ import annotations

from django.db import models


class MrrDayRow(models.Model):
    id = models.BigAutoField(primary_key=True)
    issuing_date = models.DateField()
    currency = models.CharField(max_length=3)
    interval = models.CharField(max_length=16)
    in_advance = models.BooleanField()
    period_from = models.DateTimeField(null=True)
    period_to = models.DateTimeField(null=True)
    amount = models.DecimalField(max_digits=40, decimal_places=20)
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [
            models.Index(
                fields=["issuing_date", "currency"],
                include=["interval", "in_advance", "period_from", "period_to", "amount", "count"],
                name="mrr_day_row_day_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.issuing_date} {self.currency} {self.interval}: {self.amount}"


class MrrDirtyDay(models.Model):
    """Not unique on purpose: a refresh deletes the rows it read by id, so a change committed
    while it ran keeps its own row and is recomputed by the next reader."""

    id = models.BigAutoField(primary_key=True)
    issuing_date = models.DateField()

    def __str__(self) -> str:
        return f"{self.issuing_date} (dirty)"


class InvoiceDayRow(models.Model):
    """What finalized invoices of one issuing day add up to, per currency, due date and overdue
    flag: invoiced (every finalized invoice) and outstanding (still due: summaries.invoices).
    The dashboard's Outstanding, Overdue and Invoiced, and the aging totals, sum these rows."""

    id = models.BigAutoField(primary_key=True)
    issuing_date = models.DateField()
    currency = models.CharField(max_length=3)
    payment_due_date = models.DateField()
    payment_overdue = models.BooleanField()
    invoiced_amount = models.DecimalField(max_digits=40, decimal_places=20)
    invoiced_count = models.PositiveIntegerField()
    outstanding_amount = models.DecimalField(max_digits=40, decimal_places=20)
    outstanding_count = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["issuing_date", "currency"], name="invoice_day_row_day_idx")]

    def __str__(self) -> str:
        return f"{self.issuing_date} {self.currency}: {self.invoiced_amount} invoiced, {self.outstanding_amount} due"


class InvoiceDirtyDay(models.Model):
    """An issuing day whose InvoiceDayRow rows are stale (written by the triggers of migration
    0014 in the transaction of the change); not unique, for the reason MrrDirtyDay gives."""

    id = models.BigAutoField(primary_key=True)
    issuing_date = models.DateField()

    def __str__(self) -> str:
        return f"{self.issuing_date} (dirty)"
