"""The e-mail outbox: one row per message to send, written in the transaction that issues the
document (or asks for a resend), sent after commit by a task, found again by a sweep."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    # Given up: the server refused every recipient or the message, or the retries ran out.
    FAILED = "failed", "Failed"


class EmailReason(models.TextChoices):
    ISSUED = "issued", "Document issued"
    RESEND = "resend", "Resent"
    PAYMENT_REQUEST = "payment_request", "Payment request"


class DocumentEmail(models.Model):
    """One message. `document_type` names a builder registered in invoicing.mail.documents (apps
    to the right register theirs: payments' receipts and payment requests), `document_id` the row
    it renders. `invoice` places it on that invoice's timeline (the console's history)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document_type = models.CharField(max_length=32)
    document_id = models.UUIDField()
    invoice = models.ForeignKey(
        "invoicing.Invoice", on_delete=models.CASCADE, null=True, blank=True, related_name="emails"
    )
    reason = models.CharField(max_length=16, choices=EmailReason.choices)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    subject = models.CharField(max_length=255, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    # {address: "550 No such user"}: what the server refused (the others received the message).
    refused = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    actor = models.CharField(max_length=255)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A document is e-mailed once when issued, however often its issue is announced.
            models.UniqueConstraint(
                fields=["document_type", "document_id"],
                condition=Q(reason="issued"),
                name="document_email_issued_once",
            ),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="document_email_due_idx"),
            models.Index(fields=["document_type", "document_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.document_type} e-mail to {', '.join(self.to)} ({self.status})"
