"""The portal's state changes: issue a customer's link, revoke every link of a customer, and the
customer's own edit of its billing details (validated by the customers app's upsert, exactly as
the API validates them: same codes, same history, same customer.updated webhook)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer
from customers.services import customer_upsert

from . import tokens
from .models import PortalAccess

# What a customer may change about itself in the portal (Lago's CustomerPortal::CustomerUpdateService
# less the names and shipping address Tollgate does not keep apart).
EDITABLE_FIELDS = (
    "legal_name",
    "tax_identification_number",
    "email",
    "address_line1",
    "address_line2",
    "zipcode",
    "city",
    "state",
    "country",
)


def _access(customer: Customer) -> PortalAccess:
    access, _ = PortalAccess.objects.get_or_create(customer=customer)
    return access


def portal_url_build(*, customer: Customer, base_url: str) -> str:
    """Lago's GET /customers/{id}/portal_url: an absolute link on `base_url` (the request's host,
    as PDF links are), valid TOLLGATE_PORTAL_LINK_MAX_AGE seconds, until revoked."""
    access = _access(customer)
    token = tokens.sign(customer_id=str(customer.pk), version=access.version)
    return base_url.rstrip("/") + reverse("portal:home", args=[token])


@transaction.atomic
def portal_access_revoke(*, customer: Customer) -> PortalAccess:
    """Every portal link of `customer` issued so far stops working (the next ones work)."""
    access = _access(customer)
    PortalAccess.objects.filter(pk=access.pk).update(version=F("version") + 1, revoked_at=timezone.now())
    access.refresh_from_db()
    return access


def portal_customer(token: str) -> Customer:
    """The live customer a token names; PortalLinkInvalid (PortalLinkExpired) otherwise."""
    claim = tokens.unsign(token)
    try:
        customer_id = uuid.UUID(claim.customer_id)
    except ValueError as error:
        raise tokens.PortalLinkInvalid("bad customer id") from error
    customer = Customer.live.filter(pk=customer_id).select_related("portal_access").first()
    if customer is None:
        raise tokens.PortalLinkInvalid("no such customer")
    access = getattr(customer, "portal_access", None)
    if access is None or access.version != claim.version:
        raise tokens.PortalLinkInvalid("revoked")
    return customer


def portal_billing_details_update(*, customer: Customer, changes: Mapping[str, Any]) -> Customer:
    """The customer's edit: only EDITABLE_FIELDS, through customers.services.customer_upsert
    (CustomersValidationError with Lago's codes when invalid; nothing is saved then)."""
    allowed = {field: (changes.get(field) or "").strip() for field in EDITABLE_FIELDS if field in changes}
    return customer_upsert(external_id=customer.external_id, changes=allowed).customer
