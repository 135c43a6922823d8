"""Who pays: the issuing Organization, its Customers, and the API keys machines use."""

from __future__ import annotations

import hashlib
import secrets
import uuid
import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from billing_project.history import history_user


def validate_timezone(value: str) -> None:
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError("value_is_invalid")


# The customer's billing details: what an issued invoice freezes and prints (invoicing reads it).
CUSTOMER_BILLING_FIELDS = (
    "name",
    "firstname",
    "lastname",
    "legal_name",
    "legal_number",
    "email",
    "phone",
    "url",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zipcode",
    "country",
    "currency",
    "timezone",
    "tax_identification_number",
)
# The issuer's details an invoice freezes and prints.
ORGANIZATION_ISSUER_FIELDS = (
    "name",
    "legal_name",
    "legal_number",
    "address_line1",
    "address_line2",
    "zipcode",
    "city",
    "state",
    "country",
    "email",
    "tax_identification_number",
    "invoice_footer",
    "timezone",
)
# The django-sequences name of customers' sequential ids: customers assigns them at creation,
# invoicing to a customer that has none yet (one sequence, so the numbers never collide).
CUSTOMER_SEQUENCE = "customers.customer"


class DocumentNumbering(models.TextChoices):
    PER_CUSTOMER = "per_customer", "Per customer (<PREFIX>-<customer>-<seq>)"
    PER_ORGANIZATION = "per_organization", "Per organization (<PREFIX>-<YYYYMM>-<seq>)"


# Lago's email_settings: which documents are e-mailed to the customer when they are issued.
EMAIL_SETTINGS = ("invoice.finalized", "credit_note.created", "payment_receipt.created")
# Languages the documents' e-mails are written in (invoicing.mail.locales holds their words).
DOCUMENT_LOCALES = ("en", "fr")


def new_hmac_key() -> str:
    """The organization's webhook HMAC key (X-Lago-Signature, algorithm hmac)."""
    return secrets.token_urlsafe(32)


class Organization(models.Model):
    """The single issuer row: the company that runs Tollgate and bills its customers.

    There is exactly one (id=1, enforced by a check constraint); `Organization.current()` gets it.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    lago_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=255, default="Tollgate")
    legal_name = models.CharField(max_length=255, blank=True)
    legal_number = models.CharField(max_length=255, blank=True)
    address_line1 = models.CharField(max_length=255, blank=True)
    address_line2 = models.CharField(max_length=255, blank=True)
    zipcode = models.CharField(max_length=32, blank=True)
    city = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=255, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2")
    email = models.EmailField(blank=True)
    tax_identification_number = models.CharField(max_length=255, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    default_currency = models.CharField(max_length=3, default="USD")
    document_number_prefix = models.CharField(max_length=10, default="TOL")
    document_numbering = models.CharField(
        max_length=20, choices=DocumentNumbering.choices, default=DocumentNumbering.PER_CUSTOMER
    )
    invoice_footer = models.TextField(blank=True)
    net_payment_term = models.PositiveIntegerField(default=0, help_text="Days between issuing and due date")
    invoice_grace_period = models.PositiveIntegerField(default=0, help_text="Days an invoice stays draft")
    webhook_url = models.URLField(blank=True)
    # Lago's email_settings (a subset of EMAIL_SETTINGS): the documents e-mailed when issued.
    email_settings = models.JSONField(default=list, blank=True)
    # Lago's billing_configuration.document_locale: the language of the documents' e-mails.
    document_locale = models.CharField(max_length=8, default="en")
    # Signs outbound webhooks whose endpoint uses `hmac` (as Lago's organization hmac_key); shown
    # in the admin and in GET /api/v1/organizations to the holder of an API key.
    hmac_key = models.CharField(max_length=64, default=new_hmac_key)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Change history with before/after values (the console's Activity page).
    # The webhook signing key is a secret: its change history would keep every old key.
    history = HistoricalRecords(get_user=history_user, excluded_fields=["hmac_key"])

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="organization_is_singleton")]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def current(cls) -> Organization:
        organization, _ = cls.objects.get_or_create(id=1)
        return organization


def applicable_timezone(customer_timezone: str | None, organization: Organization) -> str:
    """The one home of the rule: a customer's timezone, else its organization's, else UTC (for a
    frozen snapshot's timezone as for a live customer's)."""
    return customer_timezone or organization.timezone or "UTC"


class PaymentProvider(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    MANUAL = "manual", "Manual"


class LiveCustomerManager(models.Manager["Customer"]):
    def get_queryset(self) -> models.QuerySet[Customer]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class Customer(models.Model):
    """A customer of the organization. Soft-deleted: `deleted_at` set, the row stays for invoices."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # A per-organization counter (1, 2, ...) used by per-customer invoice numbering.
    sequential_id = models.PositiveIntegerField(null=True, blank=True, editable=False)
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    firstname = models.CharField(max_length=255, blank=True)
    lastname = models.CharField(max_length=255, blank=True)
    legal_name = models.CharField(max_length=255, blank=True)
    legal_number = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=1024, blank=True, help_text="Comma-separated addresses allowed")
    phone = models.CharField(max_length=64, blank=True)
    url = models.CharField(max_length=1024, blank=True)
    address_line1 = models.CharField(max_length=255, blank=True)
    address_line2 = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=255, blank=True)
    zipcode = models.CharField(max_length=32, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2")
    # Empty until the first subscription sets it; then every invoice of the customer uses it.
    currency = models.CharField(max_length=3, blank=True)
    # Empty means the organization's timezone applies.
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])
    tax_identification_number = models.CharField(max_length=255, blank=True)
    # Null means the organization's setting applies.
    net_payment_term = models.PositiveIntegerField(null=True, blank=True)
    invoice_grace_period = models.PositiveIntegerField(null=True, blank=True)
    payment_provider = models.CharField(max_length=16, choices=PaymentProvider.choices, blank=True)
    provider_customer_id = models.CharField(max_length=255, blank=True)
    # Lago's exclude_from_dunning_campaign: no dunning step ever reaches this customer.
    exclude_from_dunning_campaign = models.BooleanField(default=False)
    # Lago's shape: [{"lago_id", "key", "value", "display_in_invoice"}].
    metadata = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()
    live = LiveCustomerManager()

    # Change history with before/after values (the console's Activity page).
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=Q(deleted_at__isnull=True), name="customer_external_id_live_unique"
            ),
            models.UniqueConstraint(fields=["sequential_id"], name="customer_sequential_id_unique"),
        ]
        indexes = [models.Index(fields=["external_id"])]

    def __str__(self) -> str:
        return self.name or self.external_id

    def applicable_timezone(self, organization: Organization | None = None) -> str:
        """The timezone billing uses for this customer: its own, else the organization's, else
        UTC (`applicable_timezone`). Never written back onto the row."""
        return applicable_timezone(self.timezone, organization or Organization.current())

    def applicable_net_payment_term(self, organization: Organization | None = None) -> int:
        if self.net_payment_term is not None:
            return self.net_payment_term
        return (organization or Organization.current()).net_payment_term

    def applicable_invoice_grace_period(self, organization: Organization | None = None) -> int:
        if self.invoice_grace_period is not None:
            return self.invoice_grace_period
        return (organization or Organization.current()).invoice_grace_period


API_KEY_PREFIX = "tg_"


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_api_key() -> str:
    """256 bits of randomness, URL-safe, with a recognisable prefix."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(models.Model):
    """A key an integrating machine sends as `Authorization: Bearer <key>`.

    Only the SHA-256 of the key is stored; the key itself is shown once, at creation.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    # First characters of the key, to recognise it in the admin; never used to match.
    display_prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
