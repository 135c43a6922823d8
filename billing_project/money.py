"""Currency arithmetic shared by every app: minor units and explicit rounding."""

# The currencies and the digits of their minor unit are pinned in billing_project/currencies.py:
# JPY 0, USD 2, BHD 3. Amounts are Decimal throughout; rounding is always explicit and half-up.

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import cast

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


def format_precise(amount: Decimal | None, currency: str) -> str:
    """A unit price: at least the currency's decimals, more when the price has them
    ("USD 0.002", "USD 29.40"), thousands separated like format_money."""
    return f"{currency} {price_text(amount, currency, separators=True)}"


def price_text(amount: Decimal | str | None, currency: str, *, separators: bool = False) -> str:
    """A price as a form input shows it: at least the currency's decimals, more when the price
    has them ("29.40", "0.002", never the column's "29.400000")."""
    value = Decimal(amount or 0)
    exponent = cast(int, value.normalize().as_tuple().exponent)  # an int for a finite amount
    places = max(decimal_places(currency) if is_currency(currency) else 2, min(-exponent, 10))
    return f"{value:,.{places}f}" if separators else f"{value:.{places}f}"
