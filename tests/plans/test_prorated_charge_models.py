"""Prorated charge models (standard, volume, graduated), worked by hand on a 30-day month, and
their properties: never more than the unprorated price of the same (non-negative) usage, and
the same price when every unit existed the whole period."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plans.charge_models import InvalidProperties, compute, compute_prorated

D = Decimal


def ranges(key: str, *tiers: tuple[int, int | None, str, str]) -> dict:
    return {
        key: [
            {"from_value": lo, "to_value": hi, "per_unit_amount": per_unit, "flat_amount": flat}
            for lo, hi, per_unit, flat in tiers
        ]
    }


VOLUME = ranges("volume_ranges", (0, 5, "2", "10"), (6, None, "1", "20"))
GRADUATED = ranges("graduated_ranges", (0, 10, "1", "2"), (11, None, "0.5", "3"))


def test_standard_prices_the_prorated_units():
    # 6.33334 prorated seats x 10 = 63.3334; the full 6 are kept in the breakdown.
    result = compute_prorated("standard", {"amount": "10"}, units=D(6), prorated_units=D("6.33334"))
    assert result.amount == D("63.3334")
    assert result.units == D("6.33334")
    assert result.details["full_units"] == "6"


def test_volume_picks_the_tier_with_the_full_units_and_adds_its_flat_amount_whole():
    # 8 full units fall in the 6+ tier (1 per unit, flat 20): 3.5 prorated x 1 + 20 = 23.5.
    # (With the prorated 3.5 the first tier would have given 3.5 x 2 + 10 = 17.)
    result = compute_prorated("volume", VOLUME, units=D(8), prorated_units=D("3.5"))
    assert result.amount == D("23.5")
    assert result.details["tiers"][0]["from_value"] == 6
    assert compute("volume", VOLUME, units=D(8)).amount == D("28")  # unprorated: 8 x 1 + 20
    # No prorated usage, no flat amount.
    assert compute_prorated("volume", VOLUME, units=D(0), prorated_units=D(0)).amount == 0


def test_graduated_walks_the_steps_full_units_pick_the_tier_prorated_units_the_amount():
    # 8 seats carried in all month (8, 8); 6 more from day 16 of 30: (6, 3), each counts 1/2.
    # Tier 0-10: 8 + 2 of the new ones x 1/2 = 9 prorated units x 1 + flat 2 = 11.
    # Tier 11+: the other 4 new ones x 1/2 = 2 prorated units x 0.5 + flat 3 = 4. Total 15.
    result = compute_prorated(
        "graduated", GRADUATED, units=D(14), prorated_units=D(11), events=[(D(8), D(8)), (D(6), D(3))]
    )
    assert result.amount == D("15")
    assert [(t["units"], t["full_units"], t["total"]) for t in result.details["tiers"]] == [
        ("9", "10", "11"),
        ("2", "4", "4"),
    ]
    # Unprorated, the same 14 units: 10 x 1 + 2 + 4 x 0.5 + 3 = 17.
    assert compute("graduated", GRADUATED, units=D(14)).amount == D("17")


def test_graduated_step_crossing_several_tiers_is_split_at_each_bound():
    tiers = ranges("graduated_ranges", (0, 5, "3", "0"), (6, 10, "2", "0"), (11, None, "1", "0"))
    # One event of 75 on day 21 of 30: 10 days, each unit counts 1/3 (25 prorated units).
    # 5 x 1/3 x 3 = 5; 5 x 1/3 x 2 = 3.333...; 65 x 1/3 x 1 = 21.666...; total 30.
    result = compute_prorated("graduated", tiers, units=D(75), prorated_units=D(25), events=[(D(75), D(25))])
    assert result.amount.quantize(D("0.000001")) == D("30.000000")


def test_graduated_removal_stays_in_the_tier_reached():
    # 15 seats all month, 10 removed on day 16 (-10 x 15/30 = -5): the removal is priced in the
    # 11+ tier (Lago): tier 0-10: 10 x 1 + 2 = 12; tier 11+: (5 - 5) x 0.5 + 3 = 3. Total 15.
    result = compute_prorated(
        "graduated", GRADUATED, units=D(5), prorated_units=D(10), events=[(D(15), D(15)), (D(-10), D(-5))]
    )
    assert result.amount == D("15")


def test_graduated_without_steps_is_one_step():
    # (14 full, 7 prorated): 10 x 1/2 x 1 + 2 + 4 x 1/2 x 0.5 + 3 = 11
    assert compute_prorated("graduated", GRADUATED, units=D(14), prorated_units=D(7)).amount == D("11")


def test_other_models_and_bad_properties_are_refused():
    with pytest.raises(InvalidProperties):
        compute_prorated("package", {"amount": "1", "package_size": 10}, units=D(1), prorated_units=D(1))
    with pytest.raises(InvalidProperties):
        compute_prorated("standard", {"amount": "-1"}, units=D(1), prorated_units=D(1))


def test_negative_usage_costs_nothing():
    assert compute_prorated("standard", {"amount": "10"}, units=D(-3), prorated_units=D(-1)).amount == 0


# --- hypothesis ---------------------------------------------------------------------------------

amounts = st.integers(0, 500).map(lambda n: D(n) / 100)


@st.composite
def tiered(draw, key: str) -> dict:
    bounds: list[int] = []
    for gap in draw(st.lists(st.integers(2, 20), max_size=3)):  # each tier's to_value > from_value
        bounds.append((bounds[-1] if bounds else -1) + gap)
    lows = [0] + [b + 1 for b in bounds]
    highs = [*bounds, None]
    return {
        key: [
            {"from_value": lo, "to_value": hi, "per_unit_amount": str(draw(amounts)), "flat_amount": str(draw(amounts))}
            for lo, hi in zip(lows, highs, strict=True)
        ]
    }


# (full units, days it existed out of 30): non-negative additions
step_lists = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30)), min_size=1, max_size=6)


models = st.sampled_from(["standard", "volume", "graduated"]).flatmap(
    lambda m: st.tuples(
        st.just(m),
        st.builds(lambda a: {"amount": str(a)}, amounts) if m == "standard" else tiered(f"{m}_ranges"),
    )
)


def _priced(model, properties, steps):
    events = [(D(full), D(full) * days / 30) for full, days in steps]
    units = sum((full for full, _ in events), D(0))
    prorated = sum((p for _, p in events), D(0))
    return compute_prorated(model, properties, units=units, prorated_units=prorated, events=events), units


@settings(max_examples=300, deadline=None)
@given(model=models, steps=step_lists)
def test_prorated_never_exceeds_the_unprorated_price(model, steps):
    name, properties = model
    prorated, units = _priced(name, properties, steps)
    full = compute(name, properties, units=units)
    assert D(0) <= prorated.amount <= full.amount + D("1e-20")


@settings(max_examples=300, deadline=None)
@given(model=models, steps=step_lists)
def test_units_present_the_whole_period_cost_the_unprorated_price(model, steps):
    name, properties = model
    prorated, units = _priced(name, properties, [(full, 30) for full, _ in steps])
    assert prorated.amount == compute(name, properties, units=units).amount


@settings(max_examples=200, deadline=None)
@given(per_unit=amounts, steps=step_lists)
def test_one_tier_graduated_equals_standard(per_unit, steps):
    one_tier = ranges("graduated_ranges", (0, None, str(per_unit), "0"))
    graduated, _ = _priced("graduated", one_tier, steps)
    standard, _ = _priced("standard", {"amount": str(per_unit)}, steps)
    assert abs(graduated.amount - standard.amount) < D("1e-20")
