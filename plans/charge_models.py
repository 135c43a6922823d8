"""Charge models: what a quantity of usage costs, as pure functions (no database, no rounding).
`compute` prices one charge's (or filter's) units for a period, unrounded, with a breakdown;
`validate_properties` checks a model's properties with Lago's error codes (charge_models/*.rb)."""

# Deliberate differences from Lago, each explained where it is coded: negative units price as 0
# (a refund is a credit note); volume prices fractional units between two tiers at the upper tier
# (Lago fails); percentage applies per-transaction min/max whenever set and closes the free window
# at whichever of free events / free amount runs out first, on both the aggregate and per-event path.

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeGuard, overload

if TYPE_CHECKING:  # pragma: no cover - typing only; this module never touches the database
    from plans.models import Charge, ChargeFilter

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# Bigger prices than this are typos (and would overflow the 20-digit money columns downstream).
MAX_AMOUNT = Decimal("1e14")

CHARGE_MODELS = (
    "standard",
    "graduated",
    "package",
    "percentage",
    "volume",
    "graduated_percentage",
    "dynamic",
)

# The property keys each model keeps (Lago's ChargeModels::FilterPropertiesService); anything else
# a client sends is dropped by `clean_properties` rather than stored and never used.
PROPERTY_KEYS: dict[str, tuple[str, ...]] = {
    "standard": ("amount", "grouped_by"),
    "graduated": ("graduated_ranges",),
    "package": ("amount", "package_size", "free_units"),
    "percentage": (
        "rate",
        "fixed_amount",
        "free_units_per_events",
        "free_units_per_total_aggregation",
        "per_transaction_min_amount",
        "per_transaction_max_amount",
    ),
    "volume": ("volume_ranges",),
    "graduated_percentage": ("graduated_percentage_ranges",),
    "dynamic": ("grouped_by",),
}

RANGES_KEY = {
    "graduated": "graduated_ranges",
    "volume": "volume_ranges",
    "graduated_percentage": "graduated_percentage_ranges",
}


class InvalidProperties(ValueError):
    """`compute` was given properties that `validate_properties` refuses."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(f"invalid charge properties: {errors}")
        self.errors = errors


@dataclass(frozen=True)
class ChargeResult:
    amount: Decimal  # unrounded, major units of the plan currency
    units: Decimal
    unit_amount: Decimal  # amount / units (Decimal 0 when units == 0)
    details: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable, decimals as strings


# --------------------------------------------------------------------------------------------
# Validation


def _decimal(value: Any) -> Decimal | None:
    """A finite, non-negative decimal from a string (Lago accepts amounts as strings only, so
    that no float ever rounds a price), else None."""
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number < 0 or number > MAX_AMOUNT:
        return None
    return number


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Errors(dict[str, list[str]]):
    def add(self, key: str, code: str) -> None:
        codes = self.setdefault(key, [])
        if code not in codes:
            codes.append(code)


def _validate_ranges(
    properties: Mapping[str, Any], key: str, amount_fields: Mapping[str, str], errors: _Errors
) -> None:
    """Tiers: a non-empty list, starting at 0, each from_value = previous to_value + 1, each
    to_value above its from_value, only the last one open-ended (to_value null); the amounts
    non-negative decimal strings. (Lago's RangeBoundsValidator.)"""
    ranges = properties.get(key)
    if not isinstance(ranges, list) or not ranges:
        errors.add(key, f"missing_{key}")
        return
    next_from_value = 0
    last = len(ranges) - 1
    for index, tier in enumerate(ranges):
        if not isinstance(tier, Mapping):
            errors.add(key, f"invalid_{key}")
            return
        for field_name, code in amount_fields.items():
            if _decimal(tier.get(field_name)) is None:
                errors.add(field_name, code)
        # Unvalidated JSON: anything until the checks below.
        from_value: Any = tier.get("from_value")
        to_value: Any = tier.get("to_value")
        bounds_ok = _is_int(from_value) and from_value == next_from_value
        if index == last:
            bounds_ok = bounds_ok and to_value is None
        else:
            bounds_ok = bounds_ok and _is_int(to_value) and to_value > from_value
        if not bounds_ok:
            errors.add(key, f"invalid_{key}")
            return
        next_from_value = (to_value or 0) + 1


def _validate_grouped_by(properties: Mapping[str, Any], errors: _Errors) -> None:
    grouped_by = properties.get("grouped_by")
    if grouped_by is None:
        return
    if not isinstance(grouped_by, list) or not all(isinstance(key, str) and key for key in grouped_by):
        errors.add("grouped_by", "invalid_type")


def validate_properties(charge_model: str, properties: Mapping[str, Any]) -> dict[str, list[str]]:
    """{} when `properties` are valid for `charge_model`, else {field: [Lago error code, ...]}.

    Metric-dependent rules (dynamic needs sum_agg, percentage refuses latest_agg, ...) need the
    billable metric and live in plans.charge_services.
    """
    errors = _Errors()
    if charge_model not in CHARGE_MODELS:
        errors.add("charge_model", "value_is_invalid")
        return dict(errors)
    if not isinstance(properties, Mapping):
        errors.add("properties", "value_is_invalid")
        return dict(errors)

    if charge_model == "standard":
        if _decimal(properties.get("amount")) is None:
            errors.add("amount", "invalid_amount")
        _validate_grouped_by(properties, errors)
    elif charge_model == "package":
        if _decimal(properties.get("amount")) is None:
            errors.add("amount", "invalid_amount")
        package_size = properties.get("package_size")
        if not (_is_int(package_size) and package_size > 0):
            errors.add("package_size", "invalid_package_size")
        free_units = properties.get("free_units", 0)
        if not (_is_int(free_units) and free_units >= 0):
            errors.add("free_units", "invalid_free_units")
    elif charge_model == "percentage":
        if _decimal(properties.get("rate")) is None:
            errors.add("rate", "invalid_rate")
        if properties.get("fixed_amount") is not None and _decimal(properties["fixed_amount"]) is None:
            errors.add("fixed_amount", "invalid_fixed_amount")
        free_events = properties.get("free_units_per_events")
        if free_events is not None and not (_is_int(free_events) and free_events > 0):
            errors.add("free_units_per_events", "invalid_free_units_per_events")
        free_total = properties.get("free_units_per_total_aggregation")
        if free_total is not None and _decimal(free_total) is None:
            errors.add("free_units_per_total_aggregation", "invalid_free_units_per_total_aggregation")
        bounds = {}
        for key in ("per_transaction_min_amount", "per_transaction_max_amount"):
            if properties.get(key) not in (None, ""):
                bounds[key] = _decimal(properties[key])
                if bounds[key] is None:
                    errors.add(key, "invalid_amount")
        low, high = bounds.get("per_transaction_min_amount"), bounds.get("per_transaction_max_amount")
        if low is not None and high is not None and low > high:
            errors.add("per_transaction_max_amount", "per_transaction_max_lower_than_per_transaction_min")
    elif charge_model in RANGES_KEY:
        # A tier's price is a percentage rate for graduated_percentage, an amount per unit otherwise.
        is_rate = charge_model == "graduated_percentage"
        price = {"rate": "invalid_rate"} if is_rate else {"per_unit_amount": "invalid_amount"}
        _validate_ranges(properties, RANGES_KEY[charge_model], {**price, "flat_amount": "invalid_amount"}, errors)
    elif charge_model == "dynamic":
        _validate_grouped_by(properties, errors)
    return dict(errors)


def clean_properties(charge_model: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys `charge_model` uses (Lago drops the others too); package free_units
    defaults to 0 as Lago stores it."""
    keys = PROPERTY_KEYS.get(charge_model, ())
    cleaned = {key: properties[key] for key in keys if key in properties}
    if charge_model == "package":
        cleaned.setdefault("free_units", 0)
    if charge_model == "percentage":
        # Lago answers empty bounds as absent, not as "".
        for key in ("per_transaction_min_amount", "per_transaction_max_amount"):
            if cleaned.get(key) == "":
                del cleaned[key]
    return cleaned


def default_properties(charge_model: str) -> dict[str, Any]:
    """What a charge created without properties prices with (Lago's defaults: free)."""
    open_tier = {"from_value": 0, "to_value": None, "flat_amount": "0"}
    defaults: dict[str, dict[str, Any]] = {
        "standard": {"amount": "0"},
        "graduated": {"graduated_ranges": [{**open_tier, "per_unit_amount": "0"}]},
        "package": {"amount": "0", "package_size": 1, "free_units": 0},
        "percentage": {"rate": "0"},
        "volume": {"volume_ranges": [{**open_tier, "per_unit_amount": "0"}]},
        "graduated_percentage": {"graduated_percentage_ranges": [{**open_tier, "rate": "0"}]},
        "dynamic": {},
    }
    return defaults.get(charge_model, {})


def properties_for(charge: Charge, charge_filter: ChargeFilter | None = None) -> dict[str, Any]:
    """The properties that price `charge_filter`'s slice of `charge` (the charge's own when no
    filter). A filter's keys override the charge's, key by key, so a filter may restate only the
    price it changes (e.g. a percentage filter giving another `rate` keeps the charge's
    `fixed_amount`)."""
    properties = dict(charge.properties or {})
    if charge_filter is not None and charge_filter.properties:
        properties.update(charge_filter.properties)
    return properties


ALL_FILTER_VALUES = "__ALL_FILTER_VALUES__"  # Lago's wildcard: any value of the key


# --------------------------------------------------------------------------------------------
# Pricing


@overload
def _s(value: Decimal) -> str: ...
@overload
def _s(value: int) -> int: ...
@overload
def _s(value: None) -> None: ...
@overload
def _s(value: Decimal | int | None) -> str | int | None: ...
def _s(value: Decimal | int | None) -> str | int | None:
    """JSON form of a breakdown number: decimals as strings (exact), integers kept."""
    if value is None or isinstance(value, int):
        return value
    return f"{value.normalize():f}"  # fixed-point, no exponent, no trailing zeros


def _result(amount: Decimal, units: Decimal, details: dict[str, Any]) -> ChargeResult:
    # Never negative: every model's inputs are validated non-negative and units are clamped,
    # so a negative here could only come from a bug upstream; fail closed at zero.
    amount = max(amount, ZERO)
    unit_amount = amount / units if units else ZERO
    return ChargeResult(amount=amount, units=units, unit_amount=unit_amount, details=details)


def _standard(properties: Mapping[str, Any], units: Decimal, **_: Any) -> ChargeResult:
    per_unit = Decimal(properties["amount"])
    amount = units * per_unit
    return _result(amount, units, {"units": _s(units), "per_unit_amount": _s(per_unit), "total": _s(amount)})


def _package(properties: Mapping[str, Any], units: Decimal, **_: Any) -> ChargeResult:
    per_package = Decimal(properties["amount"])
    package_size = int(properties["package_size"])
    free_units = Decimal(int(properties.get("free_units") or 0))
    paid_units = max(units - free_units, ZERO)
    # A package counts from its first unit: 101 paying units of packages of 100 are 2 packages.
    packages = math.ceil(paid_units / package_size) if paid_units else 0
    amount = packages * per_package
    return _result(
        amount,
        units,
        {
            "free_units": _s(min(units, free_units)),
            "paid_units": _s(paid_units),
            "per_package_size": package_size,
            "per_package_unit_amount": _s(per_package),
            "packages": packages,
            "total": _s(amount),
        },
    )


def _graduated_tiers(
    ranges: Sequence[Mapping[str, Any]],
    steps: Sequence[tuple[Decimal, Decimal]],
    priced_units: Decimal,
    price: Callable[[Mapping[str, Any], Decimal], tuple[Decimal, dict[str, Any]]],
    *,
    prorated: bool = False,
) -> tuple[Decimal, list[dict[str, Any]]]:
    """Walk usage through graduated tiers and price each tier reached (Lago's
    compute_range_units, and its ProratedGraduatedService when prorated).

    `steps` are the (full, priced) units of each change in time order; unprorated usage is the
    one step (units, units). The running full total decides the tier each unit lands in (the
    first tier 0..N holds N units, a later tier N+1..M holds M-N) and carries the step's priced
    share (priced / full) into it; a step crossing a bound is split, a removal (full <= 0) stays
    in the tier reached so far (tiers never go back). A reached tier's flat amount is due whole,
    and never without usage (`priced_units`, the total priced)."""
    tier_full = [ZERO] * len(ranges)  # full units that landed in each tier
    tier_priced = [ZERO] * len(ranges)  # their priced share
    index = 0
    running = ZERO  # the running full total
    peak = ZERO
    for full, priced in steps:
        if full <= 0:
            tier_full[index] += full
            tier_priced[index] += priced
            running += full
            continue
        share = priced / full
        remaining = full
        while remaining > 0:
            upper = ranges[index]["to_value"]
            room = remaining if upper is None else min(remaining, max(Decimal(upper) - running, ZERO))
            tier_full[index] += room
            tier_priced[index] += room * share
            running += room
            remaining -= room
            if remaining > 0:
                index += 1  # the full total passes this tier's upper bound
        peak = max(peak, running)
    charged = peak > 0 and priced_units > 0
    total = ZERO
    tiers = []
    for position, tier in enumerate(ranges[: index + 1]):
        flat = Decimal(tier["flat_amount"]) if charged else ZERO
        usage_amount, rate_details = price(tier, tier_priced[position])
        tier_total = flat + usage_amount
        total += tier_total
        row = {"from_value": tier["from_value"], "to_value": tier["to_value"], "units": _s(tier_priced[position])}
        if prorated:
            row["full_units"] = _s(tier_full[position])
        tiers.append({**row, **rate_details, "flat_amount": _s(flat), "total": _s(tier_total)})
    return total, tiers


def _per_unit_price(tier: Mapping[str, Any], tier_units: Decimal) -> tuple[Decimal, dict[str, Any]]:
    per_unit = Decimal(tier["per_unit_amount"])
    return tier_units * per_unit, {"per_unit_amount": _s(per_unit)}


def _graduated(properties: Mapping[str, Any], units: Decimal, **_: Any) -> ChargeResult:
    amount, tiers = _graduated_tiers(properties["graduated_ranges"], [(units, units)], units, _per_unit_price)
    return _result(amount, units, {"tiers": tiers, "total": _s(amount)})


def _graduated_percentage(properties: Mapping[str, Any], units: Decimal, **_: Any) -> ChargeResult:
    def price(tier: Mapping[str, Any], tier_units: Decimal) -> tuple[Decimal, dict[str, Any]]:
        rate = Decimal(tier["rate"])
        return tier_units * rate / HUNDRED, {"rate": _s(rate)}

    amount, tiers = _graduated_tiers(properties["graduated_percentage_ranges"], [(units, units)], units, price)
    return _result(amount, units, {"tiers": tiers, "total": _s(amount)})


def _volume(properties: Mapping[str, Any], units: Decimal, **_: Any) -> ChargeResult:
    return _volume_tier(properties["volume_ranges"], full_units=units, priced_units=units)


def _volume_tier(ranges: Sequence[Mapping[str, Any]], *, full_units: Decimal, priced_units: Decimal) -> ChargeResult:
    """`priced_units` at the rate of the tier `full_units` fall in, plus its flat amount whole
    (unprorated, both are the units)."""
    # The first tier whose upper bound holds the total. Bounds are integers, so a fractional
    # total past one tier's to_value (100.5 after 0-100) belongs to the next tier.
    tier = next(t for t in ranges if t["to_value"] is None or full_units <= t["to_value"])
    per_unit = Decimal(tier["per_unit_amount"])
    flat = Decimal(tier["flat_amount"]) if priced_units else ZERO
    usage = priced_units * per_unit
    amount = usage + flat
    return _result(
        amount,
        priced_units,
        {
            "tiers": [
                {
                    "from_value": tier["from_value"],
                    "to_value": tier["to_value"],
                    "units": _s(priced_units),
                    "per_unit_amount": _s(per_unit),
                    "flat_amount": _s(flat),
                    "total": _s(amount),
                }
            ],
            "per_unit_amount": _s(per_unit),
            "flat_unit_amount": _s(flat),
            "per_unit_total_amount": _s(usage),
            "total": _s(amount),
        },
    )


def _free_window(
    event_values: Sequence[Decimal], free_events: int, free_total: Decimal
) -> tuple[list[Decimal], int, Decimal]:
    """Walk the events in time order through the free allowance.

    Returns (paying value of each event, number of fully free events, free value used).
    An event is free while free events remain (if any are granted) and the free amount left
    (if any is granted) is strictly above its value; the event that reaches the free amount
    pays the rate on its excess and the fixed fee (Lago counts it as paying, too). The window
    closes for good at whichever allowance runs out first.
    """
    remaining_events = free_events if free_events else None
    remaining_amount = free_total if free_total else None
    paying: list[Decimal] = []
    free_count = 0
    free_value = ZERO
    window_open = remaining_events is not None or remaining_amount is not None
    for value in event_values:
        value = max(value, ZERO)
        if window_open and remaining_events is not None and remaining_events <= 0:
            window_open = False
        if not window_open:
            paying.append(value)
            continue
        if remaining_amount is None or remaining_amount > value:
            free_count += 1
            free_value += value
            if remaining_events is not None:
                remaining_events -= 1
            if remaining_amount is not None:
                remaining_amount -= value
            paying.append(ZERO)
            continue
        free_value += remaining_amount
        paying.append(value - remaining_amount)
        window_open = False
    return paying, free_count, free_value


def _percentage(
    properties: Mapping[str, Any],
    units: Decimal,
    *,
    events_count: int,
    event_values: Sequence[Decimal] | None,
    **_: Any,
) -> ChargeResult:
    rate = Decimal(properties["rate"])
    fixed = Decimal(properties["fixed_amount"]) if properties.get("fixed_amount") is not None else ZERO
    free_events = int(properties.get("free_units_per_events") or 0)
    free_total = Decimal(properties.get("free_units_per_total_aggregation") or 0)
    low = properties.get("per_transaction_min_amount")
    high = properties.get("per_transaction_max_amount")
    min_amount = Decimal(low) if low not in (None, "") else None
    max_amount = Decimal(high) if high not in (None, "") else None

    if event_values is None and (free_events or free_total):
        # Which events are free depends on each event's value; pricing without them would be a
        # guess. The caller has them (the metric's per-event values, ordered by timestamp).
        raise ValueError("percentage with free units needs event_values (per-event amounts in time order)")

    count = len(event_values) if event_values is not None else events_count
    if event_values is not None:
        paying_values, free_count, free_value = _free_window(event_values, free_events, free_total)
    else:
        paying_values, free_count, free_value = [], 0, ZERO

    paid_units = max(units - free_value, ZERO)
    paid_events = max(count - free_count, 0)
    rate_amount = paid_units * rate / HUNDRED
    # No usage, no per-transaction fee (Lago's compute_fixed_amount).
    fixed_total = paid_events * fixed if units else ZERO
    amount = rate_amount + fixed_total
    details: dict[str, Any] = {
        "units": _s(units),
        "free_units": _s(min(free_value, units)),
        "paid_units": _s(paid_units),
        "free_events": free_count,
        "paid_events": paid_events,
        "rate": _s(rate),
        "per_unit_total_amount": _s(rate_amount),
        "fixed_fee_unit_amount": _s(fixed),
        "fixed_fee_total_amount": _s(fixed_total),
        "min_max_adjustment_total_amount": "0",
    }

    if min_amount is not None or max_amount is not None:
        if event_values is None:
            # Each transaction's fee can only be clamped knowing each transaction.
            details["per_transaction_min_max_applied"] = False
        else:
            # Fee per paying transaction, clamped; fully free transactions stay free.
            clamped_total = ZERO
            per_event = []
            for index, value in enumerate(paying_values):
                if index < free_count:  # the free window is a prefix of the events
                    per_event.append("0")
                    continue
                fee = value * rate / HUNDRED + fixed
                if min_amount is not None and fee < min_amount:
                    fee = min_amount
                if max_amount is not None and fee > max_amount:
                    fee = max_amount
                clamped_total += fee
                per_event.append(_s(fee))
            details["per_transaction_min_max_applied"] = True
            details["min_max_adjustment_total_amount"] = _s(clamped_total - amount)
            details["per_event_amounts"] = per_event
            amount = clamped_total

    details["total"] = _s(amount)
    return _result(amount, units, details)


def _dynamic(properties: Mapping[str, Any], units: Decimal, *, precise_total_amount: Decimal, **_: Any) -> ChargeResult:
    # The price travels with each event (precise_total_amount_cents); the charge adds nothing.
    amount = max(precise_total_amount, ZERO)
    return _result(amount, units, {"units": _s(units), "precise_total_amount": _s(amount), "total": _s(amount)})


_MODELS: dict[str, Callable[..., ChargeResult]] = {
    "standard": _standard,
    "graduated": _graduated,
    "package": _package,
    "percentage": _percentage,
    "volume": _volume,
    "graduated_percentage": _graduated_percentage,
    "dynamic": _dynamic,
}


def compute(
    charge_model: str,
    properties: Mapping[str, Any],
    *,
    units: Decimal,
    events_count: int = 0,
    event_values: Sequence[Decimal] | None = None,
    precise_total_amount: Decimal = ZERO,
) -> ChargeResult:
    """Price `units` of usage with `charge_model` and its Lago `properties`.

    `events_count` and `event_values` (each event's value, in timestamp order) matter for
    percentage only: fixed fees per transaction, free events / free amount, per-transaction
    min/max. `precise_total_amount` (major units) is the whole price of a dynamic charge.
    Raises InvalidProperties when `validate_properties` refuses the properties.
    """
    errors = validate_properties(charge_model, properties)
    if errors:
        raise InvalidProperties(errors)
    units = Decimal(units)
    details_extra: dict[str, Any] = {}
    if units < 0:
        # A sum metric may fall below zero (returns, corrections); that is a credit, not a fee.
        details_extra["aggregated_units"] = _s(units)
        units = ZERO
    values = [Decimal(value) for value in event_values] if event_values is not None else None
    result = _MODELS[charge_model](
        properties,
        units,
        events_count=events_count,
        event_values=values,
        precise_total_amount=Decimal(precise_total_amount),
    )
    if details_extra:
        return ChargeResult(result.amount, result.units, result.unit_amount, {**result.details, **details_extra})
    return result


# --------------------------------------------------------------------------------------------
# Prorated charges (a `prorated` charge on a recurring sum or unique count metric)

# The one home of who may be billed how (Lago's charge validations): plans validates charges
# with these, invoicing bills by them. Prorating also needs a recurring metric whose aggregation
# prorates (metrics.aggregation.PRORATED_AGGREGATIONS).
PRORATED_MODELS = ("standard", "graduated", "volume")
PAY_IN_ADVANCE_AGGREGATIONS = ("count_agg", "sum_agg", "unique_count_agg")
PAY_IN_ADVANCE_EXCLUDED_MODELS = ("volume",)


def compute_prorated(
    charge_model: str,
    properties: Mapping[str, Any],
    *,
    units: Decimal,
    prorated_units: Decimal,
    events: Sequence[tuple[Decimal, Decimal]] | None = None,
) -> ChargeResult:
    """Price a prorated charge, as Lago (Charges::ChargeModels::* with charge.prorated):
    `units` are the full units at the period's end, `prorated_units` the units weighted by the
    part of the period they existed (metrics.aggregation.aggregate_prorated).

    - standard: prorated units x amount.
    - volume: the tier is the one the FULL units fall in; prorated units are priced at its rate
      and its flat amount is added whole (not prorated) when there are prorated units.
    - graduated: `events` are the (full, prorated) units of each step, carried-in first, in time
      order (Lago's ProratedGraduatedService): the running full total decides which tier each
      unit lands in, the step's prorated share of it (prorated / full) is priced at that tier's
      rate; a step crossing a boundary is split; a removal is priced in the tier reached so far
      (tiers never go back). A tier's flat amount is due, whole, once the full total passed into
      it. Without `events`, one step (units, prorated_units).

    The result's units are the prorated units (what is priced, as Lago's fee); the breakdown keeps
    the full units. Never negative. Raises InvalidProperties as `compute` does."""
    if charge_model not in PRORATED_MODELS:
        raise InvalidProperties({"charge_model": ["value_is_invalid"]})
    errors = validate_properties(charge_model, properties)
    if errors:
        raise InvalidProperties(errors)
    units, prorated_units = Decimal(units), Decimal(prorated_units)
    priced_units = max(prorated_units, ZERO)
    extra = {"full_units": _s(units), "prorated_units": _s(prorated_units)}
    if charge_model == "standard":
        result = _standard(properties, priced_units)
    elif charge_model == "volume":
        result = _volume_tier(properties["volume_ranges"], full_units=max(units, ZERO), priced_units=priced_units)
    else:
        steps = [(Decimal(f), Decimal(p)) for f, p in events] if events is not None else [(units, prorated_units)]
        amount, tiers = _graduated_tiers(
            properties["graduated_ranges"], steps, priced_units, _per_unit_price, prorated=True
        )
        result = _result(amount, priced_units, {"tiers": tiers, "total": _s(amount)})
    return ChargeResult(result.amount, result.units, result.unit_amount, {**result.details, **extra})
