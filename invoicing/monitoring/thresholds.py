"""How far a subscription's lifetime usage is from each usage threshold of its plan (the
`usage_thresholds` of Lago's lifetime_usage object, LifetimeUsages::UsageThresholdsCompletionService):

- fixed thresholds passed: completion 1.0, reached when the progressive invoice applied them;
- the first fixed threshold not passed: (total - last passed) / (its amount - last passed),
  the later ones 0.0, then the recurring one (at the highest fixed + its amount) 0.0;
- every fixed one passed: each repetition of the recurring threshold passed (1.0), then the
  next one with the remainder's ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_project.money import to_cents

from .models import AppliedUsageThreshold

ZERO = Decimal(0)


@dataclass(frozen=True)
class ThresholdCompletion:
    amount_cents: int
    completion_ratio: Decimal
    reached_at: datetime | None


def thresholds_completion(figures: Any, *, max_rows: int = 100) -> list[ThresholdCompletion] | None:
    """None when the plan has no usage thresholds (Lago then leaves the key out)."""
    from ..progressive import applicable_thresholds

    thresholds = applicable_thresholds(figures.subscription)
    if not thresholds:
        return None
    currency = figures.currency
    total = figures.total_amount
    reached = {
        (row.usage_threshold_id, row.threshold_amount): row.created_at
        for row in AppliedUsageThreshold.objects.filter(
            external_subscription_id=figures.subscription.external_id, usage_threshold__in=thresholds
        )
    }
    fixed = sorted((t for t in thresholds if not t.recurring), key=lambda t: t.amount)
    recurring = next((t for t in thresholds if t.recurring), None)
    passed = [t for t in fixed if t.amount <= total]
    not_passed = [t for t in fixed if t.amount > total]
    rows = [
        ThresholdCompletion(to_cents(t.amount, currency), Decimal(1), reached.get((t.pk, t.amount))) for t in passed
    ]
    last = passed[-1].amount if passed else ZERO
    if not_passed:
        first = not_passed[0]
        rows.append(ThresholdCompletion(to_cents(first.amount, currency), (total - last) / (first.amount - last), None))
        rows += [ThresholdCompletion(to_cents(t.amount, currency), ZERO, None) for t in not_passed[1:]]
        if recurring is not None:
            rows.append(ThresholdCompletion(to_cents(fixed[-1].amount + recurring.amount, currency), ZERO, None))
    elif recurring is not None:
        step = recurring.amount
        repetitions = int((total - last) // step)
        for k in range(1, min(repetitions, max_rows) + 1):
            level = last + k * step
            rows.append(ThresholdCompletion(to_cents(level, currency), Decimal(1), reached.get((recurring.pk, level))))
        remainder = (total - last) - repetitions * step
        rows.append(ThresholdCompletion(to_cents(last + (repetitions + 1) * step, currency), remainder / step, None))
    return rows
