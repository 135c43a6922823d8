"""What the plans app does when apps to its left announce something (connected in ready())."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from . import services
from .models import Subscription, Tax

logger = logging.getLogger(__name__)


def retire_charges_of_deleted_metric(sender: Any, *, billable_metric_id: Any, **kwargs: Any) -> None:
    services.charges_retire_for_metric(billable_metric_id=billable_metric_id)


def known_subscription_ids(sender: Any, external_customer_id: str | None = None, **kwargs: Any) -> QuerySet:
    """Every external subscription id that exists (in any status): events for them are matched.
    With `external_customer_id`, only that customer's (the events browser's customer filter)."""
    subscriptions = Subscription.objects.all()
    if external_customer_id is not None:
        subscriptions = subscriptions.filter(customer__external_id=external_customer_id)
    return subscriptions.values_list("external_id", flat=True)


def grouped_by_keys(sender: Any, *, metric: Any, **kwargs: Any) -> set[str]:
    """The event property keys that live charges on `metric` (or their filters) group by: the
    usage rollups keep their values so that grouped charges read from them too."""
    from .models import Charge

    keys: set[str] = set()
    for charge in Charge.objects.filter(billable_metric=metric, deleted_at__isnull=True).prefetch_related("filters"):
        sources = [charge.properties or {}] + [f.properties or {} for f in charge.filters.all() if f.deleted_at is None]
        for properties in sources:
            grouped_by = properties.get("grouped_by") if isinstance(properties, dict) else None
            if isinstance(grouped_by, list):
                keys.update(key for key in grouped_by if isinstance(key, str) and key)
    return keys


def apply_customer_tax_codes(sender: Any, *, customer_id: Any, tax_codes: Any = None, **kwargs: Any) -> None:
    """Lago's customer `tax_codes`: when the customers app passes them along with
    `customer_saved`, they become the customer's taxes (an empty list removes them). Codes that
    name no tax are skipped and logged; the customer was saved already."""
    if tax_codes is None:
        return
    from customers.models import Customer

    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        return
    codes = [str(code) for code in tax_codes]
    known = set(Tax.objects.filter(code__in=codes).values_list("code", flat=True))
    unknown = [code for code in codes if code not in known]
    if unknown:
        logger.warning("plans: customer %s: unknown tax codes %s ignored", customer.external_id, unknown)
    services.customer_taxes_set(customer=customer, tax_codes=[code for code in codes if code in known])


def end_subscriptions_of_deleted_customer(sender: Any, *, customer_id: Any, **kwargs: Any) -> None:
    """Lago terminates a deleted customer's subscriptions: active ones end now (invoicing bills
    their last partial period on `subscription_terminated`), pending ones are canceled."""
    with transaction.atomic():
        live = Subscription.objects.filter(customer_id=customer_id, status__in=("active", "pending"))
        for subscription in live.select_related("customer", "plan").order_by("created_at"):
            services.subscription_terminate(subscription=subscription)
