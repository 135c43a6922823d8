"""Lineage (which events each fee counted), late-usage marks and corrections.

A finalized invoice never changes: late usage for its period becomes a correction document (an
invoice of type `correction`, or a credit note on the original), recorded by a `Correction` row
whose unique (original invoice, late events digest) makes a rerun create nothing."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models


class FeeEventSet(models.Model):
    """The events an original invoice's fee counted, as one row: their ids, ascending. Written
    once, in the statement that inserts the fee (one row per fee where there was a row per event,
    the billing run's largest write: 19x fewer bytes in bench_invoicing). A correction's fees are
    `FeeEvent` rows, whose selection leaves out the events of their line's set (lineage.py)."""

    fee = models.OneToOneField("invoicing.Fee", on_delete=models.CASCADE, primary_key=True, related_name="+")
    event_ids = ArrayField(models.BigIntegerField())

    def __str__(self) -> str:
        return f"{self.fee_id} <- {len(self.event_ids)} events"


class FeeEvent(models.Model):
    """One late event a correction's fee counted. `root_fee` is the line of the original invoice
    the event belongs to (the fee it corrects, or the correction's own fee for a new line): unique
    with the event, so no event is ever counted twice for one line, whatever corrections race;
    the line's own events (its `FeeEventSet`) are never selected for it. A row whose fee is gone
    (a discarded correction draft) keeps the event handled."""

    id = models.BigAutoField(primary_key=True)
    # No single-column indexes of their own: `fee_event_fee_idx` and the unique constraint lead
    # with these columns and serve their lookups and cascades (invoicing 0016).
    fee = models.ForeignKey(
        "invoicing.Fee", on_delete=models.SET_NULL, null=True, related_name="lineage", db_index=False
    )
    root_fee = models.ForeignKey("invoicing.Fee", on_delete=models.CASCADE, related_name="+", db_index=False)
    event_id = models.BigIntegerField()
    # The correction that found the event late (None only for rows written before invoicing 0018,
    # which moved an original fee's rows into its set): a refreshed draft's rows are replaced, a
    # discarded one's stay (its events handled).
    correction = models.ForeignKey(
        "Correction", on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["root_fee", "event_id"], name="fee_event_root_unique")]
        indexes = [
            models.Index(fields=["fee", "event_id"], name="fee_event_fee_idx"),
            # Only a correction's rows: a partial index.
            models.Index(
                fields=["correction"],
                condition=models.Q(correction__isnull=False),
                name="fee_event_correction_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.fee_id} <- event {self.event_id}"


class BilledThrough(models.Model):
    """Per external subscription, the end of its latest finalized usage period: an event stored
    with an earlier timestamp is late (the events table's trigger marks it, migration 0007)."""

    external_subscription_id = models.CharField(max_length=255, primary_key=True)
    billed_until = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.external_subscription_id} billed until {self.billed_until}"


class LateUsageMark(models.Model):
    """A subscription whose finalized periods received events: the next run re-rates every
    finalized period ending after `earliest_timestamp`. Written by the events table's trigger
    (one statement per ingestion batch); `generation` grows with every late batch, so a run
    removes the mark only if no batch arrived while it worked."""

    id = models.BigAutoField(primary_key=True)
    external_subscription_id = models.CharField(max_length=255, unique=True)
    earliest_timestamp = models.DateTimeField()
    generation = models.BigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.external_subscription_id} late from {self.earliest_timestamp}"


class CorrectionStatus(models.TextChoices):
    DRAFT = "draft", "Draft (waits for finance)"
    ISSUED = "issued", "Issued"
    DISCARDED = "discarded", "Discarded"
    SUPERSEDED = "superseded", "Superseded by a later draft"


class Correction(models.Model):
    """One re-rating of an original invoice over a set of late events (append-only audit, but
    for its status): the increase as a correction invoice, the decrease as a credit note."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    original_invoice = models.ForeignKey("invoicing.Invoice", on_delete=models.PROTECT, related_name="corrections")
    # md5 of the late events' sorted ids: the same events never make a second correction.
    events_digest = models.CharField(max_length=32)
    events_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=CorrectionStatus.choices)
    invoice = models.ForeignKey(
        "invoicing.Invoice", on_delete=models.SET_NULL, null=True, blank=True, related_name="correction_of"
    )
    credit_note = models.ForeignKey(
        "invoicing.CreditNote", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The decreases, per corrected fee: [{"fee_id", "amount"}] (a draft's, issued when finalized).
    decreases = models.JSONField(default=list, blank=True)
    actor = models.CharField(max_length=255)
    discard_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["original_invoice", "events_digest"], name="correction_events_unique")
        ]

    def __str__(self) -> str:
        return f"correction of {self.original_invoice_id} ({self.status})"
