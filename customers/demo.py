"""Demo data for customers: the organization's details, the customers "acme", "tanaka" (the ones
the plans demo subscribes) and "globex", a superuser `admin` and an API key named "demo".

The password and the API key go to the demo's closing block once, on the run that creates them:
neither is stored in clear.
Safe to repeat: existing rows are left as they are (a rerun never resets what someone changed).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from billing_project.demo import DemoSummary

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

# They match plans.demo.CUSTOMERS (names, countries, timezones): acme (USD, the organization's
# timezone) and tanaka (JPY, Tokyo) get monthly plans, globex (EUR, Paris) a weekly one.
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
        # Short terms, so the demo's older Tanaka invoice is past due (the overdue example).
        "net_payment_term": 14,
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
        # A week of grace on a weekly plan: its latest invoice is always a draft in its grace period.
        "invoice_grace_period": 7,
    },
}

ADMIN_USERNAME = "admin"
DEMO_API_KEY_NAME = "demo"


def load(*, stdout: Any, summary: DemoSummary | None = None) -> None:
    summary = summary if summary is not None else DemoSummary()
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
        _admin_user(stdout, summary)
        _api_key(stdout, summary)


def _admin_user(stdout: Any, summary: DemoSummary) -> None:
    summary.admin_username = ADMIN_USERNAME
    User = get_user_model()
    if User.objects.filter(username=ADMIN_USERNAME).exists():
        stdout.write(f"customers: superuser '{ADMIN_USERNAME}' exists (its password was printed when it was created)")
        return
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser(ADMIN_USERNAME, email="admin@tollgate.example", password=password)
    summary.admin_password = password
    stdout.write(f"customers: superuser '{ADMIN_USERNAME}' created (its password is in the closing block)")


def _api_key(stdout: Any, summary: DemoSummary) -> None:
    if ApiKey.objects.filter(name=DEMO_API_KEY_NAME, revoked_at__isnull=True).exists():
        stdout.write(
            f"customers: API key '{DEMO_API_KEY_NAME}' exists (printed when created; "
            "`manage.py create_api_key --name NAME` makes another)"
        )
        return
    _, raw = services.api_key_create(name=DEMO_API_KEY_NAME)
    summary.api_key = raw
    stdout.write(f"customers: API key '{DEMO_API_KEY_NAME}' created (the key is in the closing block)")
