"""metrics.demo: the three metrics and the demo events, idempotent."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from metrics import demo
from metrics.aggregation import aggregate
from metrics.models import BillableMetric, Event

pytestmark = pytest.mark.django_db


def test_demo_loads_once(monkeypatch):
    now = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(demo.timezone, "now", lambda: now)

    first = io.StringIO()
    demo.load(stdout=first)
    count = Event.objects.count()
    again = io.StringIO()
    demo.load(stdout=again)

    assert set(BillableMetric.live.values_list("code", flat=True)) == {"api_calls", "storage_gb", "seats"}
    # Today's burst: one call a minute from 00:00 UTC through 12:00 inclusive, 721 per subscription.
    today = Event.objects.filter(transaction_id__contains="-today-")
    assert today.count() == 3 * 721
    assert today.filter(timestamp__lt=datetime(2026, 3, 16, tzinfo=UTC)).count() == 0
    assert 400 <= count - today.count() <= 700
    assert Event.objects.count() == count
    assert f"0 of {count} demo events stored" in again.getvalue()
    assert set(Event.objects.values_list("external_subscription_id", flat=True)) == {
        "sub_acme",
        "sub_tanaka",
        "sub_globex",
    }
    assert Event.objects.filter(timestamp__gt=now).count() == 0
    assert Event.objects.filter(timestamp__lt=datetime(2026, 2, 1, tzinfo=UTC)).count() == 0

    # February, hand-computed: acme has 150 calls and seats alice, carol, dan (bob removed).
    february = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    calls = BillableMetric.live.get(code="api_calls")
    seats = BillableMetric.live.get(code="seats")
    storage = BillableMetric.live.get(code="storage_gb")

    def units(metric, subscription):
        start, end = february
        return aggregate(metric, external_subscription_ids=[subscription], from_datetime=start, to_datetime=end).units

    assert units(calls, "sub_acme") == 150
    assert units(seats, "sub_acme") == 3
    assert units(seats, "sub_tanaka") == 2
    # tanaka: 5 GB from Feb 3 09:00, 8 GB from Feb 21 09:00: (5 x 432 h + 8 x 183 h) / 672 h = 5.3928...
    # rounded as the metric says (round, 2 places).
    assert units(storage, "sub_tanaka") == Decimal("5.39")
