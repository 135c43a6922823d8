"""Row locks of the customers app's aggregates, one helper each. Locks are always taken in one
order across apps: customer, then subscription (plans.locks), then invoice and its credit notes
(invoicing.locks), so two transactions never wait on each other in a circle."""

from __future__ import annotations

from typing import Any

from .models import Customer, Organization


def lock_customer(customer: Customer | Any) -> Customer:
    """The customer's row, locked until commit (a Customer or its primary key)."""
    pk = customer.pk if isinstance(customer, Customer) else customer
    return Customer.objects.select_for_update().get(pk=pk)


def lock_organization() -> Organization:
    """The organization's row, locked until commit (made first if missing)."""
    Organization.current()
    return Organization.objects.select_for_update().get(pk=1)
