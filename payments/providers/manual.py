"""The manual provider: money arrives outside Tollgate (bank transfer, cheque, cash) and a person
records it (`POST /api/v1/payments` or the admin). Nothing is asked of anyone on finalization."""

from __future__ import annotations

from decimal import Decimal

NAME = "manual"
COLLECTS_AUTOMATICALLY = False

# Lago's limit for a manual payment's reference.
REFERENCE_MAX_LENGTH = 40


def exceeds_amount_due(*, amount: Decimal, amount_due: Decimal) -> bool:
    """A payment recorded by hand may settle part or all of what is due, never more: money above
    the amount due belongs in a credit (wallet top-up), not on this invoice."""
    return amount > amount_due
