"""Test data builders for the customers app (plain functions, keyword arguments)."""

from __future__ import annotations

from typing import Any

from customers.models import ApiKey, Customer, Organization, generate_api_key, hash_api_key


def make_api_key(*, name: str = "test") -> ApiKey:
    raw = generate_api_key()
    key = ApiKey.objects.create(name=name, display_prefix=raw[:10], key_hash=hash_api_key(raw))
    key.raw = raw  # type: ignore[attr-defined]  # the raw key, for tests only (never stored)
    return key


def make_customer(*, external_id: str = "cust_1", **fields: Any) -> Customer:
    Organization.current()
    fields.setdefault("name", f"Customer {external_id}")
    return Customer.objects.create(external_id=external_id, **fields)
