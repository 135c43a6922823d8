"""Currency arithmetic shared by every app: minor units and explicit rounding."""

# The currencies and the digits of their minor unit are pinned in billing_project/currencies.py:
# JPY 0, USD 2, BHD 3. Amounts are Decimal throughout; rounding is always explicit and half-up.

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from djmoney.money import Money

from billing_project.currencies import MINOR_UNIT_DIGITS


def is_currency(code: str) -> bool:
    return code in MINOR_UNIT_DIGITS


def decimal_places(currency: str) -> int:
    """Digits after the decimal point of the currency's minor unit (JPY 0, USD 2, BHD 3)."""
    return MINOR_UNIT_DIGITS[currency]


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-decimal_places(currency))


def round_amount(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half-up (0.005 USD -> 0.01)."""
    return Decimal(amount).quantize(quantum(currency), rounding=ROUND_HALF_UP)


def to_cents(amount: Decimal, currency: str) -> int:
    """Major units to integer minor units (Lago's `*_amount_cents`), rounding half-up."""
    return int(round_amount(amount, currency).scaleb(decimal_places(currency)))


def from_cents(cents: int | Decimal, currency: str) -> Decimal:
    """Integer (or precise decimal) minor units to major units, exact."""
    return Decimal(cents).scaleb(-decimal_places(currency))


def money(amount: Decimal, currency: str) -> Money:
    return Money(amount, currency)


def format_money(amount: Decimal | int | None, currency: str) -> str:
    """Money as finance reads it: "USD 1,123.45", "JPY 5,000", "BHD 1.250"; negatives "-USD 10.00".

    The admin, the dashboard and the exports' page totals all show amounts through this one
    function, so a figure reads the same wherever it appears."""
    if not is_currency(currency):
        return f"{currency} {Decimal(amount or 0):,}"
    value = round_amount(Decimal(amount or 0), currency)
    text = f"{currency} {abs(value):,.{decimal_places(currency)}f}"
    return f"-{text}" if value < 0 else text
