"""Reads of the customers app: the live customers list with Lago's filters."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Q, QuerySet

from .models import Customer

SEARCHED_FIELDS = ("external_id", "name", "firstname", "lastname", "legal_name", "email")


def customers_list(
    *,
    search_term: str | None = None,
    countries: Sequence[str] = (),
    currencies: Sequence[str] = (),
) -> QuerySet[Customer]:
    """Live customers, newest first (Lago's order), filtered as Lago's GET /customers filters."""
    queryset = Customer.live.all()
    if search_term:
        condition = Q()
        for field in SEARCHED_FIELDS:
            condition |= Q(**{f"{field}__icontains": search_term})
        queryset = queryset.filter(condition)
    if countries:
        queryset = queryset.filter(country__in=[code.upper() for code in countries])
    if currencies:
        queryset = queryset.filter(currency__in=[code.upper() for code in currencies])
    return queryset.order_by("-created_at", "-id")


def customer_live_get(*, external_id: str) -> Customer | None:
    return Customer.live.filter(external_id=external_id).first()
