"""State changes of the customers app: the organization's details, customers (upsert by
external_id, soft delete) and API keys. Each is one transaction; `customer_saved` and
`customer_deleted` are sent after commit, so apps to the right react to committed rows only.

Validation answers Lago's error codes ({field: [code, ...]}); the admin shows the same codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sequences
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from billing_project.after_commit import send_after_commit
from billing_project.money import is_currency

from .countries import is_country_code
from .errors import CustomersValidationError
from .locks import lock_customer, lock_organization
from .models import (
    CUSTOMER_BILLING_FIELDS,
    CUSTOMER_SEQUENCE,
    DOCUMENT_LOCALES,
    EMAIL_SETTINGS,
    ORGANIZATION_ISSUER_FIELDS,
    ApiKey,
    Customer,
    DocumentNumbering,
    Organization,
    PaymentProvider,
    generate_api_key,
    hash_api_key,
)
from .signals import customer_deleted, customer_saved, customer_saved_in_tx

MAX_TEXT_LENGTH = 255
# Lago's limits on a customer's metadata: at most 5 pairs, keys up to 20 and values up to 100
# characters.
MAX_METADATA = 5
MAX_METADATA_KEY_LENGTH = 20
MAX_METADATA_VALUE_LENGTH = 100
MAX_DAYS = 36_500  # payment terms and grace periods, in days: a century is surely a typo

CUSTOMER_TEXT_FIELDS = (*CUSTOMER_BILLING_FIELDS, "payment_provider", "provider_customer_id")
CUSTOMER_DAY_FIELDS = ("net_payment_term", "invoice_grace_period")
CUSTOMER_FIELDS = (*CUSTOMER_TEXT_FIELDS, *CUSTOMER_DAY_FIELDS, "exclude_from_dunning_campaign")

# The issuer's details (invoice_footer among them) and the organization's billing settings.
ORGANIZATION_TEXT_FIELDS = (
    *ORGANIZATION_ISSUER_FIELDS,
    "default_currency",
    "document_number_prefix",
    "document_numbering",
    "webhook_url",
)
ORGANIZATION_DAY_FIELDS = ("net_payment_term", "invoice_grace_period")
ORGANIZATION_FIELDS = (*ORGANIZATION_TEXT_FIELDS, *ORGANIZATION_DAY_FIELDS, "email_settings", "document_locale")

# Django's own validation codes, in Lago's words (full_clean is the last line of defence).
_DJANGO_CODES = {
    "required": "value_is_mandatory",
    "blank": "value_is_mandatory",
    "null": "value_is_mandatory",
    "max_length": "value_is_invalid",
    "invalid": "value_is_invalid",
    "invalid_choice": "value_is_invalid",
    "min_value": "value_is_invalid",
    "max_value": "value_is_invalid",
}


@dataclass(frozen=True)
class CustomerUpsertResult:
    customer: Customer
    created: bool


# --- validation -----------------------------------------------------------------------------


def _is_timezone(value: str) -> bool:
    try:
        Customer._meta.get_field("timezone").run_validators(value)
    except ValidationError:
        return False
    return True


def _emails_valid(value: str) -> bool:
    """One address or several separated by commas (Lago sends invoices to each)."""
    for address in value.split(","):
        try:
            validate_email(address.strip())
        except ValidationError:
            return False
    return True


def _days_invalid(value: Any) -> bool:
    return value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS)


def _full_clean_errors(instance: Customer | Organization, exclude: list[str]) -> dict[str, list[str]]:
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        details: dict[str, list[str]] = {}
        for field, field_errors in error.error_dict.items():
            codes = []
            for item in field_errors:
                message = str(item.message)
                codes.append(message if message.startswith("value_") else _DJANGO_CODES.get(item.code or "", "invalid"))
            details[field] = list(dict.fromkeys(codes))
        return details
    return {}


def _max_length(model: type[models.Model], field: str) -> int | None:
    model_field = model._meta.get_field(field)
    return model_field.max_length if isinstance(model_field, models.Field) else None


def customer_validate(customer: Customer) -> dict[str, list[str]]:
    """Lago's rules for a customer, with its codes ({} when valid). The admin form uses it too."""
    errors: dict[str, list[str]] = {}
    if not customer.external_id or not customer.external_id.strip():
        errors["external_id"] = ["value_is_mandatory"]
    for field in CUSTOMER_TEXT_FIELDS:
        if field == "email":
            continue
        max_length = _max_length(Customer, field)
        if max_length is not None and len(getattr(customer, field) or "") > max_length:
            errors[field] = ["value_is_invalid"]
    if len(customer.external_id or "") > MAX_TEXT_LENGTH:
        errors["external_id"] = ["value_is_invalid"]
    elif (
        "external_id" not in errors
        and customer.deleted_at is None
        and Customer.live.filter(external_id=customer.external_id).exclude(pk=customer.pk).exists()
    ):
        errors["external_id"] = ["value_already_exist"]
    if customer.email and (len(customer.email) > 1024 or not _emails_valid(customer.email)):
        errors["email"] = ["invalid_email_format"]
    if customer.country and not is_country_code(customer.country):
        errors["country"] = ["country_code_invalid"]
    if customer.currency and not is_currency(customer.currency):
        errors["currency"] = ["value_is_invalid"]
    if customer.timezone and not _is_timezone(customer.timezone):
        errors["timezone"] = ["invalid_timezone"]
    if customer.payment_provider not in ("", *PaymentProvider.values):
        errors["payment_provider"] = ["value_is_invalid"]
    for field in CUSTOMER_DAY_FIELDS:
        if _days_invalid(getattr(customer, field)):
            errors[field] = ["value_is_invalid"]
    if errors:
        return errors
    return _full_clean_errors(customer, exclude=["sequential_id", "metadata"])


def organization_validate(organization: Organization) -> dict[str, list[str]]:
    """Lago's rules for the organization's details ({} when valid). The admin form uses it too."""
    errors: dict[str, list[str]] = {}
    for field in ORGANIZATION_TEXT_FIELDS:
        max_length = _max_length(Organization, field)
        if max_length is not None and len(getattr(organization, field) or "") > max_length:
            errors[field] = ["value_is_invalid"]
    if not organization.name or not organization.name.strip():
        errors["name"] = ["value_is_mandatory"]
    if organization.email and not _emails_valid(organization.email):
        errors["email"] = ["invalid_email_format"]
    if organization.country and not is_country_code(organization.country):
        errors["country"] = ["country_code_invalid"]
    if not organization.default_currency:
        errors["default_currency"] = ["value_is_mandatory"]
    elif not is_currency(organization.default_currency):
        errors["default_currency"] = ["value_is_invalid"]
    if not organization.timezone:
        errors["timezone"] = ["value_is_mandatory"]
    elif not _is_timezone(organization.timezone):
        errors["timezone"] = ["invalid_timezone"]
    prefix = organization.document_number_prefix or ""
    if not prefix or len(prefix) > 10 or not prefix.replace("-", "").isalnum():
        errors["document_number_prefix"] = ["value_is_invalid"]
    if organization.document_numbering not in DocumentNumbering.values:
        errors["document_numbering"] = ["value_is_invalid"]
    if organization.webhook_url:
        try:
            URLValidator(schemes=["http", "https"])(organization.webhook_url)
        except ValidationError:
            errors["webhook_url"] = ["url_invalid"]
    settings_list = organization.email_settings
    if not isinstance(settings_list, list) or any(item not in EMAIL_SETTINGS for item in settings_list):
        errors["email_settings"] = ["value_is_invalid"]
    if organization.document_locale not in DOCUMENT_LOCALES:
        errors["document_locale"] = ["invalid_value"]
    for field in ORGANIZATION_DAY_FIELDS:
        value = getattr(organization, field)
        if value is None or _days_invalid(value):
            errors[field] = ["value_is_invalid"]
    if errors:
        return errors
    return _full_clean_errors(organization, exclude=[])


def normalize_codes(instance: Customer | Organization, fields: tuple[str, ...]) -> None:
    """Country and currency codes are stored upper case, whatever case they were sent in."""
    for field in fields:
        value = getattr(instance, field, "")
        if isinstance(value, str):
            setattr(instance, field, value.strip().upper())


def _assign(
    instance: Customer | Organization, changes: Mapping[str, Any], fields: tuple[str, ...], text_fields: tuple[str, ...]
) -> None:
    """Lago's partial update: the fields present in `changes` are set, the others kept; an
    explicit null clears a text field (stored as "")."""
    for field in fields:
        if field in changes:
            value = changes[field]
            setattr(instance, field, "" if value is None and field in text_fields else value)


# --- organization ---------------------------------------------------------------------------


def organization_update(*, changes: Mapping[str, Any]) -> Organization:
    """Apply the fields present in `changes` (a partial update, as Lago's PUT: an explicit null
    clears a text field). Unknown keys are ignored."""
    with transaction.atomic():
        organization = lock_organization()
        _assign(organization, changes, ORGANIZATION_FIELDS, ORGANIZATION_TEXT_FIELDS)
        normalize_codes(organization, ("country", "default_currency", "document_number_prefix"))
        errors = organization_validate(organization)
        if errors:
            raise CustomersValidationError(errors)
        organization.save()
    return organization


# --- customers ------------------------------------------------------------------------------


def _metadata_merge(current: list[dict[str, Any]], items: Any) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Lago's metadata semantics: the list sent replaces the customer's list; an item naming an
    existing pair (by `id` or by key) keeps its lago_id and created_at."""
    if not isinstance(items, list):
        return current, {"metadata": ["value_is_invalid"]}
    if len(items) > MAX_METADATA:
        return current, {"metadata": ["invalid_count"]}
    by_id = {str(item.get("lago_id")): item for item in current}
    by_key = {item.get("key"): item for item in current}
    merged: list[dict[str, Any]] = []
    keys: set[str] = set()
    now = timezone.now().isoformat()
    for item in items:
        if not isinstance(item, Mapping):
            return current, {"metadata": ["value_is_invalid"]}
        key, value, display = item.get("key"), item.get("value"), item.get("display_in_invoice", False)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(key, str) or not key.strip() or not isinstance(value, str):
            return current, {"metadata": ["value_is_mandatory"]}
        if len(key) > MAX_METADATA_KEY_LENGTH or len(value) > MAX_METADATA_VALUE_LENGTH:
            return current, {"metadata": ["value_is_invalid"]}
        if not isinstance(display, bool):
            return current, {"metadata": ["value_is_invalid"]}
        if key in keys:
            return current, {"metadata": ["value_already_exist"]}
        keys.add(key)
        existing = by_id.get(str(item.get("id"))) if item.get("id") else None
        existing = existing or by_key.get(key)
        merged.append(
            {
                "lago_id": existing["lago_id"] if existing else str(uuid.uuid4()),
                "key": key,
                "value": value,
                "display_in_invoice": display,
                "created_at": existing.get("created_at", now) if existing else now,
            }
        )
    return merged, {}


def customer_currency_claim(*, customer: Customer, currency: str) -> bool:
    """The first subscription or invoice of a customer without a currency gives it its own (as
    Lago); later ones must match. False when `currency` is not the customer's (the caller refuses
    it with its own error). The caller holds the customer's row lock."""
    if customer.currency:
        return customer.currency == currency
    Customer.objects.filter(pk=customer.pk).update(currency=currency, updated_at=timezone.now())
    customer.currency = currency
    return True


def customer_has_billing_history(customer: Customer) -> bool:
    """Has the customer subscriptions or invoices? Read through the reverse relations the apps to
    the right declare on Customer (no import of them: the street stays one-way)."""
    for relation in ("subscriptions", "invoices"):
        manager = getattr(customer, relation, None)
        if manager is not None and manager.exists():
            return True
    return False


def _send_saved(customer: Customer, created: bool, sync_with_provider: bool | None, tax_codes: Any) -> None:
    customer_id = customer.pk
    # Inside the transaction: the webhook outbox row commits (or rolls back) with the customer.
    customer_saved_in_tx.send(sender=Customer, customer_id=customer_id, created=created)
    send_after_commit(
        customer_saved,
        sender=Customer,
        customer_id=customer_id,
        created=created,
        sync_with_provider=sync_with_provider,
        tax_codes=tax_codes,
    )


def customer_save(
    *,
    customer: Customer,
    sync_with_provider: bool | None = None,
    tax_codes: list[str] | None = None,
) -> Customer:
    """Validate and save a customer built or changed by the caller (the admin's form, the upsert),
    giving a new one its sequential id. Sends `customer_saved` after commit."""
    normalize_codes(customer, ("country", "currency"))
    errors = customer_validate(customer)
    if errors:
        raise CustomersValidationError(errors)
    created = customer._state.adding
    try:
        with transaction.atomic():
            if created and customer.sequential_id is None:
                customer.sequential_id = sequences.get_next_value(CUSTOMER_SEQUENCE)
            customer.save()
            _send_saved(customer, created, sync_with_provider, tax_codes)
    except IntegrityError as error:
        # Another live customer took this external_id between our check and our insert.
        raise CustomersValidationError({"external_id": ["value_already_exist"]}) from error
    return customer


def _apply_changes(customer: Customer, changes: Mapping[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    provider_before = customer.payment_provider
    _assign(customer, changes, CUSTOMER_FIELDS, CUSTOMER_TEXT_FIELDS)
    if (
        customer.payment_provider != provider_before
        and "provider_customer_id" not in changes
        and not customer._state.adding
    ):
        # The id belonged to the previous provider.
        customer.provider_customer_id = ""
    if "metadata" in changes and changes["metadata"] is not None:
        customer.metadata, metadata_errors = _metadata_merge(list(customer.metadata or []), changes["metadata"])
        errors.update(metadata_errors)
    return errors


def customer_upsert(
    *,
    external_id: str,
    changes: Mapping[str, Any],
    sync_with_provider: bool | None = None,
    tax_codes: list[str] | None = None,
) -> CustomerUpsertResult:
    """Lago's POST /customers: create the live customer with this external_id, or update it with
    the fields present in `changes` (absent fields are kept, an explicit null clears).

    Once a customer has subscriptions or invoices its currency is fixed (Lago's
    `currencies_does_not_match`). Two concurrent creations of one external_id both succeed: the
    loser of the unique index retries as an update of the winner.
    """
    if not isinstance(external_id, str) or not external_id.strip():
        raise CustomersValidationError({"external_id": ["value_is_mandatory"]})
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _customer_upsert_once(
                    external_id=external_id, changes=changes, sync_with_provider=sync_with_provider, tax_codes=tax_codes
                )
        except CustomersValidationError as error:
            if attempt == 0 and error.details == {"external_id": ["value_already_exist"]}:
                continue
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _customer_upsert_once(
    *, external_id: str, changes: Mapping[str, Any], sync_with_provider: bool | None, tax_codes: list[str] | None
) -> CustomerUpsertResult:
    Organization.current()
    customer = Customer.live.select_for_update().filter(external_id=external_id).first()
    created = customer is None
    if customer is None:
        customer = Customer(external_id=external_id)
    currency_before = customer.currency
    errors = _apply_changes(customer, changes)
    normalize_codes(customer, ("country", "currency"))
    if (
        not created
        and currency_before
        and customer.currency != currency_before
        and "currency" not in errors
        and customer_has_billing_history(customer)
    ):
        errors["currency"] = ["currencies_does_not_match"]
    if errors:
        raise CustomersValidationError({**customer_validate(customer), **errors})
    customer = customer_save(customer=customer, sync_with_provider=sync_with_provider, tax_codes=tax_codes)
    return CustomerUpsertResult(customer=customer, created=created)


def customer_delete(*, customer: Customer) -> Customer:
    """Soft delete: the row stays for the invoices that name it; its external_id is free again.
    Sends `customer_deleted` after commit (apps to the right end what the customer had running)."""
    with transaction.atomic():
        locked = lock_customer(customer)
        if locked.deleted_at is None:
            locked.deleted_at = timezone.now()
            locked.save(update_fields=["deleted_at", "updated_at"])
            customer_id = locked.pk
            send_after_commit(customer_deleted, sender=Customer, customer_id=customer_id)
    return locked


# --- API keys -------------------------------------------------------------------------------


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """A new key: returns the row and the raw key, which is never stored and never shown again."""
    name = (name or "").strip()
    if not name:
        raise CustomersValidationError({"name": ["value_is_mandatory"]})
    if len(name) > MAX_TEXT_LENGTH:
        raise CustomersValidationError({"name": ["value_is_invalid"]})
    raw = generate_api_key()
    api_key = ApiKey.objects.create(name=name, display_prefix=raw[:10], key_hash=hash_api_key(raw))
    return api_key, raw


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoked keys answer 401 from the next request on; revoking twice keeps the first date."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key
