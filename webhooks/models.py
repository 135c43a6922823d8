"""Outbound webhooks: the endpoints an integrating product registered, the delivery outbox (one row
per event per endpoint, written in the transaction of the change) and one row per HTTP attempt,
plus the RSA key pair that signs X-Lago-Signature (jwt)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

# Lago caps an organization's endpoints at 10.
MAX_ENDPOINTS = 10


class SignatureAlgo(models.TextChoices):
    JWT = "jwt", "JWT (RS256)"
    HMAC = "hmac", "HMAC-SHA256"


class WebhookEndpoint(models.Model):
    """Where deliveries go. The signing secrets are stored encrypted (webhooks.keys): the plain
    secret is shown once, at creation or rotation, and never again."""

    lago_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook_url = models.URLField(max_length=1024)
    signature_algo = models.CharField(max_length=8, choices=SignatureAlgo.choices, default=SignatureAlgo.JWT)
    name = models.CharField(max_length=255, blank=True)
    # Tollgate extension: the webhook types sent to this endpoint; null means every type.
    event_types = models.JSONField(null=True, blank=True)
    signing_secret_encrypted = models.TextField(editable=False)
    # After a rotation the previous secret still signs (a second v1=) until this instant.
    previous_signing_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.webhook_url

    def wants(self, webhook_type: str) -> bool:
        return self.event_types is None or webhook_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one endpoint. `body` is frozen at emission: every attempt sends these exact
    bytes with the same X-Lago-Unique-Key (`unique_key`). The bigint id orders an endpoint's
    deliveries in creation order."""

    id = models.BigAutoField(primary_key=True)
    unique_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The event announced: one delivery per (event, endpoint), enforced by the constraint below.
    # Random per emission; deterministic for a scheduled announcement (a termination alert is its
    # subscription, ending date and lead time), so a rerun of its task writes nothing.
    event_key = models.CharField(max_length=200)
    webhook_type = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts_count = models.PositiveIntegerField(default=0)
    # attempts_count when it was last resent from the admin: the retry schedule restarts there.
    attempts_at_resend = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The drain's "oldest pending of this endpoint" and the sweep's "due pending rows".
            models.Index(
                fields=["endpoint", "id"], name="webhook_delivery_pending", condition=Q(status=DeliveryStatus.PENDING)
            ),
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(status=DeliveryStatus.PENDING)
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_recent"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event_key", "endpoint"], name="webhook_one_delivery_per_event_endpoint")
        ]

    def __str__(self) -> str:
        return f"{self.webhook_type} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery: what the receiver answered, or why there was no answer."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_unique_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"


class SigningKeyPair(models.Model):
    """The single RSA key pair of X-Lago-Signature (jwt), generated once. The private key is
    encrypted with a key derived from SECRET_KEY (webhooks.keys); the public key is public."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    private_key_encrypted = models.TextField()
    public_key_pem = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="signing_key_pair_is_singleton")]

    def __str__(self) -> str:
        return "webhook signing key pair"
