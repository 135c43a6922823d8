"""Credit notes: corrections of finalized invoices (credit and refund), their numbering
`<invoice number>-CN<n>`, and the credit they leave for the customer's next invoices.

Contract (filled by the credit-notes work; until then nothing is credited):
- credit_notes_available(*, customer, currency) -> Decimal: credit left to consume (read only).
- credit_notes_apply(*, invoice, amount) -> Decimal: inside the caller's transaction, consume up
  to `amount` of the customer's available credit (oldest first, rows locked), write Credit rows
  on `invoice`, lower each note's balance; returns what was applied.
- credit_note_create(*, invoice, reason, items, description="", credit_amount=None,
  refund_amount=None, actor) -> CreditNote, where items is a list of (fee, Decimal amount).
- credit_note_create_for_unused_subscription_fee(*, fee, amount, actor) -> CreditNote | None:
  an upgrade or termination credits the unused part of a fee paid in advance.
- credit_note_void(*, credit_note, actor) -> CreditNote.
- credit_note_estimate(*, invoice, items) -> dict.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def credit_notes_available(*, customer: Any, currency: str) -> Decimal:
    return Decimal(0)


def credit_notes_apply(*, invoice: Any, amount: Decimal) -> Decimal:
    return Decimal(0)


def credit_note_create_for_unused_subscription_fee(*, fee: Any, amount: Decimal, actor: str) -> Any:
    return None
