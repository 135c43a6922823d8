"""Stripe's minor units: zero-decimal as is, three-decimal ending in 0, never below the amount due."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.providers.stripe import from_stripe_amount, stripe_amount


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("12.34", "USD", 1234),
        ("0.50", "usd", 50),
        ("1234", "JPY", 1234),
        ("5000", "KRW", 5000),
        ("1.230", "BHD", 1230),
        # BHD 1.234 cannot be charged: Stripe needs a last digit of 0. Rounded up to 1.240.
        ("1.234", "BHD", 1240),
        ("1.231", "KWD", 1240),
        ("0.001", "OMR", 10),
        ("100", "ISK", 10000),
        ("100.5", "ISK", 10100),
        # Sub-cent leftovers (a precise amount) are rounded up, never dropped.
        ("12.341", "USD", 1235),
    ],
)
def test_stripe_amount(amount, currency, expected):
    assert stripe_amount(Decimal(amount), currency) == expected


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [(1234, "USD", "12.34"), (1234, "JPY", "1234"), (1240, "BHD", "1.240"), (10100, "ISK", "101.00")],
)
def test_from_stripe_amount(minor, currency, expected):
    assert from_stripe_amount(minor, currency) == Decimal(expected)


amounts = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("99999999.999"), places=3)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KRW", "BHD", "JOD", "KWD", "OMR", "TND", "ISK"])


@given(amount=amounts, currency=currencies)
def test_never_charges_less_than_due_and_less_than_one_step_more(amount, currency):
    minor = stripe_amount(amount, currency)
    charged = from_stripe_amount(minor, currency)
    step = {"BHD": 10, "JOD": 10, "KWD": 10, "OMR": 10, "TND": 10, "ISK": 100}.get(currency, 1)
    assert minor % step == 0
    assert charged >= amount
    assert charged - amount < from_stripe_amount(step, currency)


@given(minor=st.integers(min_value=1, max_value=10**12), currency=currencies)
def test_round_trip_of_chargeable_amounts(minor, currency):
    step = {"BHD": 10, "JOD": 10, "KWD": 10, "OMR": 10, "TND": 10, "ISK": 100}.get(currency, 1)
    chargeable = minor * step
    assert stripe_amount(from_stripe_amount(chargeable, currency), currency) == chargeable


@pytest.mark.parametrize(("currency", "step"), [("USD", "0.01"), ("JPY", "1"), ("BHD", "0.010"), ("ISK", "1.00")])
def test_chargeable_step(currency, step):
    from payments.providers.stripe import chargeable_step

    assert chargeable_step(currency) == Decimal(step)
