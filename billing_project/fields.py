"""Typed factories for the decimal columns the apps share: one place for their digits."""

# They replace `models.DecimalField(**AMOUNT)` splats, which type checkers cannot match to arguments,
# and say what a MoneyField reads as (a Money; django-stubs would take it for a DecimalField's Decimal).

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, TypeAlias, overload

from django.db import models
from django.db.models.expressions import Combinable
from djmoney.models.fields import MoneyField
from djmoney.money import Money

# What django-stubs infers for a non-null `models.DecimalField(...)`: set from these, read a Decimal.
DecimalColumn: TypeAlias = "models.DecimalField[str | float | Decimal | Combinable, Decimal]"


def amount_field(*, zero_default: bool = True) -> DecimalColumn:
    """Major units of a currency, already rounded to its minor unit (20 digits, 6 decimals)."""
    if zero_default:
        return models.DecimalField(max_digits=20, decimal_places=6, default=0)
    return models.DecimalField(max_digits=20, decimal_places=6)


def precise_field() -> DecimalColumn:
    """Unrounded amounts, as a charge model computed them (40 digits, 20 decimals)."""
    return models.DecimalField(max_digits=40, decimal_places=20, default=0)


def units_field() -> DecimalColumn:
    """Aggregated metric units (30 digits, 10 decimals)."""
    return models.DecimalField(max_digits=30, decimal_places=10, default=0)


def rate_field() -> DecimalColumn:
    """A tax rate in percent (9 digits, 4 decimals)."""
    return models.DecimalField(max_digits=9, decimal_places=4, default=0)


# A MoneyField reads as a Money (amount and currency); it accepts a Money or a bare amount.
MoneyInput: TypeAlias = "Money | str | float | Decimal | Combinable"


@overload
def money_field(*, null: Literal[False] = False) -> models.Field[MoneyInput, Money]: ...
@overload
def money_field(*, null: Literal[True]) -> models.Field[MoneyInput | None, Money | None]: ...
def money_field(*, null: bool = False) -> models.Field[Any, Any]:
    """An amount with its currency in a sibling `<name>_currency` column (20 digits, 6 decimals)."""
    if null:
        return MoneyField(max_digits=20, decimal_places=6, default_currency=None, null=True, blank=True)
    return MoneyField(max_digits=20, decimal_places=6, default_currency=None)
