"""What the plans services share: the clock, the amount bound, the unique-code guard and taxes
looked up by code. Private to plans' *_services modules."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .errors import NotFoundError, PlansError
from .models import Tax

# Upper bound of amounts in minor units (MoneyField: 20 digits, 6 decimals).
MAX_CENTS = 10**14


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


@contextmanager
def _code_taken_is_refused() -> Iterator[None]:
    """Save inside this block: a concurrent create or rename that took the same code first
    loses at the unique index (in a savepoint) and is refused as Lago does, not as a 500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise PlansError.field("code", "value_already_exist") from None


def _taxes_by_codes(codes: Iterable[str] | None) -> list[Tax]:
    """The taxes named by `codes`, in order; 404 tax_not_found for an unknown code (as Lago)."""
    codes = list(dict.fromkeys(codes or []))
    found = {tax.code: tax for tax in Tax.objects.filter(code__in=codes)}
    missing = [code for code in codes if code not in found]
    if missing:
        raise NotFoundError("tax")
    return [found[code] for code in codes]


def _check_cents(field: str, cents: Any, *, required: bool = True) -> None:
    if cents is None:
        if required:
            raise PlansError.field(field, "value_is_mandatory")
        return
    if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0 or cents >= MAX_CENTS:
        raise PlansError.field(field, "value_is_invalid")
