"""Demo data for customers: the organization's details, the customers "acme", "tanaka" (the ones
the plans demo subscribes) and "globex", a superuser `admin` and an API key named "demo".

The password and the API key are printed once, when they are created: neither is stored in clear.
Safe to repeat: existing rows are left as they are (a rerun never resets what someone changed).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from . import services
from .models import ApiKey, Customer, Organization

ORGANIZATION = {
    "name": "Tollgate Demo",
    "legal_name": "Tollgate Demo Inc.",
    "legal_number": "DE-2024-0001",
    "tax_identification_number": "US12-3456789",
    "email": "billing@tollgate.example",
    "address_line1": "500 Market Street",
    "address_line2": "Floor 4",
    "zipcode": "94105",
    "city": "San Francisco",
    "state": "CA",
    "country": "US",
    "timezone": "UTC",
    "default_currency": "USD",
    "document_number_prefix": "TOL",
    "net_payment_term": 30,
    "invoice_grace_period": 0,
    "invoice_footer": "Thank you for your business. Payment within 30 days by bank transfer or card.",
}

# acme and tanaka match plans.demo.CUSTOMERS (names, countries, timezones) and get its USD and JPY
# plans; globex has no subscription (a customer the finance team just created).
CUSTOMERS: dict[str, dict[str, Any]] = {
    "acme": {
        "name": "Acme Corp",
        "legal_name": "Acme Corporation",
        "email": "ap@acme.example, cfo@acme.example",
        "address_line1": "1 Road Runner Way",
        "city": "Phoenix",
        "state": "AZ",
        "zipcode": "85001",
        "country": "US",
        "currency": "USD",
        "timezone": "",
        "tax_identification_number": "US98-7654321",
        "payment_provider": "manual",
        "metadata": [{"key": "crm_id", "value": "HS-1001", "display_in_invoice": False}],
    },
    "tanaka": {
        "name": "Tanaka K.K.",
        "legal_name": "Tanaka Kabushiki Kaisha",
        "email": "keiri@tanaka.example",
        "address_line1": "1-2-3 Marunouchi",
        "city": "Chiyoda-ku, Tokyo",
        "zipcode": "100-0005",
        "country": "JP",
        "currency": "JPY",
        "timezone": "Asia/Tokyo",
        "net_payment_term": 45,
        "payment_provider": "manual",
        "metadata": [{"key": "po_number", "value": "PO-7781", "display_in_invoice": True}],
    },
    "globex": {
        "name": "Globex SARL",
        "email": "compta@globex.example",
        "address_line1": "12 rue de la Paix",
        "city": "Paris",
        "zipcode": "75002",
        "country": "FR",
        "currency": "EUR",
        "timezone": "Europe/Paris",
        "tax_identification_number": "FR40123456789",
        "invoice_grace_period": 3,
    },
}

ADMIN_USERNAME = "admin"
DEMO_API_KEY_NAME = "demo"


def load(*, stdout: Any) -> None:
    with transaction.atomic():
        organization = Organization.current()
        if not organization.legal_name:
            services.organization_update(changes=ORGANIZATION)
            stdout.write(f"customers: organization details set ({ORGANIZATION['legal_name']})")
        created = []
        for external_id, fields in CUSTOMERS.items():
            if Customer.live.filter(external_id=external_id).exists():
                continue
            services.customer_upsert(external_id=external_id, changes=fields)
            created.append(external_id)
        stdout.write(f"customers: {len(created)} demo customer(s) created ({', '.join(created) or 'all present'})")
        _admin_user(stdout)
        _api_key(stdout)


def _admin_user(stdout: Any) -> None:
    User = get_user_model()
    if User.objects.filter(username=ADMIN_USERNAME).exists():
        stdout.write(f"customers: superuser '{ADMIN_USERNAME}' exists (its password was printed when it was created)")
        return
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser(ADMIN_USERNAME, email="admin@tollgate.example", password=password)
    stdout.write(f"customers: superuser created, printed this once: username '{ADMIN_USERNAME}', password '{password}'")


def _api_key(stdout: Any) -> None:
    if ApiKey.objects.filter(name=DEMO_API_KEY_NAME, revoked_at__isnull=True).exists():
        stdout.write(
            f"customers: API key '{DEMO_API_KEY_NAME}' exists (printed when created; "
            "`manage.py create_api_key --name NAME` makes another)"
        )
        return
    _, raw = services.api_key_create(name=DEMO_API_KEY_NAME)
    stdout.write(f"customers: API key created, printed this once: {raw}")
    stdout.write(f'  try: curl -H "Authorization: Bearer {raw}" http://127.0.0.1:8000/api/v1/customers')
