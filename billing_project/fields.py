"""Typed factories for the decimal columns the apps share: one place for their digits.

They replace `models.DecimalField(**AMOUNT)` splats, which type checkers cannot match to arguments.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeAlias

from django.db import models
from django.db.models.expressions import Combinable

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
