"""The fees of one subscription-period: the one computation invoices and current usage share, so
the two can never disagree.

`billing_window_*` say what a run bills (the subscription fee's period, the usage period, the
reason); `subscription_fees` turns a window into unsaved `Fee` rows: the subscription fee (in
advance or in arrears, prorated, zero during a trial), one fee per charge (one per charge filter
plus the unmatched remainder, one per group for grouped charges) and spending-minimum true-ups.
Each fee is rounded once, half-up, to the currency's minor unit; `precise_amount` keeps the
charge model's figure. Events are aggregated in SQL (metrics.aggregation), either one query per
charge bucket (`DirectUsage`) or, for a bulk run, one query per bucket for many subscriptions
(`BatchUsage`): the number of queries never depends on the number of events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.db.models import Prefetch

from billing_project.money import from_cents, round_amount
from metrics.aggregation import (
    PRORATED_AGGREGATIONS,
    AggregationResult,
    ProratedAggregationResult,
    ProratedPeriod,
    aggregate,
    aggregate_grouped,
    aggregate_prorated,
    aggregate_prorated_grouped,
    aggregate_prorated_subscriptions,
    aggregate_subscriptions,
)
from metrics.models import AggregationType, BillableMetric, Event
from metrics.selectors import event_numeric_value, event_scalar_text, event_text_value
from plans import charge_models, periods
from plans.models import Charge, ChargeFilter, Subscription

from .models import Fee, FeeType, InvoicingReason

ZERO = Decimal(0)
_TICK = timedelta(microseconds=1)
_R = TypeVar("_R")


# --------------------------------------------------------------------------------------------
# What a run bills


@dataclass(frozen=True)
class BillingWindow:
    """One subscription-period to bill. `fee_period` is the period the subscription fee covers
    (None: no subscription fee on this invoice); `charges_*` the usage period (None: no usage)."""

    reason: str
    from_datetime: datetime
    to_datetime: datetime
    timestamp: datetime
    fee_period: periods.Period | None
    charges_period: periods.Period | None

    @property
    def charges_from_datetime(self) -> datetime | None:
        return self.charges_period.from_datetime if self.charges_period else None

    @property
    def charges_to_datetime(self) -> datetime | None:
        return self.charges_period.to_datetime if self.charges_period else None


def _start(subscription: Subscription) -> datetime:
    start = subscription.started_at or subscription.subscription_at
    return max(start, subscription.subscription_at)


def periodic_boundary(subscription: Subscription, at: datetime) -> datetime | None:
    """The last period boundary at or before `at` that ended a billing (or charges) period of
    `subscription` after it started, else None. With charges billed monthly on a yearly plan
    the monthly boundaries count too."""
    start = _start(subscription)
    if at <= start:
        return None
    boundary = periods.subscription_period(subscription, at).from_datetime
    if subscription.plan.bill_charges_monthly:
        boundary = max(boundary, periods.subscription_charges_period(subscription, at).from_datetime)
    return boundary if boundary > start else None


def billing_window_periodic(subscription: Subscription, boundary: datetime) -> BillingWindow:
    """The invoice due at `boundary` (a period end): in arrears, the ended period's fee and
    usage; in advance, the next period's fee and the ended period's usage. A boundary that only
    ends a monthly charges period of a yearly plan bills the usage alone."""
    ended = periods.subscription_period(subscription, boundary - _TICK)
    usage = periods.subscription_charges_period(subscription, boundary - _TICK)
    if ended.to_datetime != boundary:  # only a charges boundary
        return BillingWindow(
            reason=InvoicingReason.SUBSCRIPTION_PERIODIC,
            from_datetime=usage.from_datetime,
            to_datetime=usage.to_datetime,
            timestamp=boundary,
            fee_period=None,
            charges_period=usage,
        )
    fee_period = periods.subscription_period(subscription, boundary) if subscription.plan.pay_in_advance else ended
    return BillingWindow(
        reason=InvoicingReason.SUBSCRIPTION_PERIODIC,
        from_datetime=fee_period.from_datetime,
        to_datetime=fee_period.to_datetime,
        timestamp=boundary,
        fee_period=fee_period,
        charges_period=usage,
    )


def billing_window_starting(subscription: Subscription) -> BillingWindow | None:
    """A pay-in-advance plan bills its first (prorated) period when it starts; None otherwise."""
    if not subscription.plan.pay_in_advance or subscription.started_at is None:
        return None
    first = periods.subscription_period(subscription, _start(subscription))
    return BillingWindow(
        reason=InvoicingReason.SUBSCRIPTION_STARTING,
        from_datetime=first.from_datetime,
        to_datetime=first.to_datetime,
        timestamp=_start(subscription),
        fee_period=first,
        charges_period=None,
    )


def billing_window_final(subscription: Subscription, *, reason: str) -> BillingWindow:
    """The last, possibly partial period of a terminated subscription (terminated, downgraded
    or upgraded): usage up to the end; the fee in arrears for the days used (a fee paid in
    advance was billed already, its unused part is credited by the caller)."""
    end = subscription.terminated_at
    assert end is not None, "a final window needs terminated_at"
    tz = periods.subscription_timezone(subscription)
    probe = max(end - _TICK, _start(subscription))
    last = periods.clip_to(periods.subscription_period(subscription, probe), end, tz)
    usage = periods.clip_to(periods.subscription_charges_period(subscription, probe), end, tz)
    return BillingWindow(
        reason=reason,
        from_datetime=last.from_datetime,
        to_datetime=last.to_datetime,
        timestamp=end,
        fee_period=None if subscription.plan.pay_in_advance else last,
        charges_period=usage,
    )


def billing_window_in_advance_charge(subscription: Subscription, at: datetime) -> BillingWindow:
    """The invoice of one event of a pay-in-advance charge at `at`: the billing period holding
    it and the charges period its fee covers; no subscription fee."""
    billing_period = periods.subscription_period(subscription, at)
    return BillingWindow(
        reason=InvoicingReason.IN_ADVANCE_CHARGE,
        from_datetime=billing_period.from_datetime,
        to_datetime=billing_period.to_datetime,
        timestamp=at,
        fee_period=None,
        charges_period=periods.subscription_charges_period(subscription, at),
    )


# --------------------------------------------------------------------------------------------
# Usage: aggregation in SQL

Filters = dict[str, list[str]]


@dataclass(frozen=True)
class Bucket:
    """The slice of a charge's events one fee prices: a charge filter's events (those it is the
    most specific match for), or the remainder that matches no filter (charge_filter None)."""

    charge_filter: ChargeFilter | None
    filters: Filters | None
    exclude_filters: tuple[Filters, ...]

    def key(self, metric: BillableMetric) -> tuple[Any, ...]:
        def freeze(values: Filters | None) -> tuple[Any, ...]:
            return tuple(sorted((k, tuple(v)) for k, v in (values or {}).items()))

        return (metric.pk, freeze(self.filters), tuple(freeze(x) for x in self.exclude_filters))


def _filter_values(charge_filter: ChargeFilter, metric: BillableMetric) -> Filters:
    """A filter's values with Lago's wildcard expanded to the metric filter's values for the key."""
    metric_values = {f.key: [str(v) for v in f.values] for f in metric.filters.all()}
    values: Filters = {}
    for key, allowed in (charge_filter.values or {}).items():
        allowed = [str(v) for v in allowed]
        if charge_models.ALL_FILTER_VALUES in allowed:
            allowed = metric_values.get(key, [])
        values[key] = allowed
    return values


def charge_buckets(charge: Charge) -> list[Bucket]:
    """One bucket per live filter, then the remainder (or just the charge without filters).
    An event belongs to the most specific filter it matches (most keys, first listed on a tie),
    as plans.charge_models.matching_filter decides: filter i takes the events matching it and
    none of the filters that outrank it."""
    metric = charge.billable_metric
    filters = [f for f in charge.filters.all() if f.deleted_at is None]
    if not filters:
        return [Bucket(None, None, ())]
    values = [_filter_values(f, metric) for f in filters]
    buckets = []
    for index, charge_filter in enumerate(filters):
        outranking = tuple(
            values[j]
            for j in range(len(filters))
            if j != index
            and (len(values[j]) > len(values[index]) or (len(values[j]) == len(values[index]) and j < index))
        )
        buckets.append(Bucket(charge_filter, values[index], outranking))
    buckets.append(Bucket(None, None, tuple(values)))
    return buckets


def _needs_event_values(charge_model: str, properties: dict[str, Any]) -> bool:
    if charge_model != "percentage":
        return False
    keys = ("free_units_per_events", "free_units_per_total_aggregation")
    bounds = ("per_transaction_min_amount", "per_transaction_max_amount")
    return any(properties.get(k) for k in keys) or any(properties.get(k) not in (None, "") for k in bounds)


def is_prorated(charge: Charge) -> bool:
    """Is `charge` priced with prorated units? Its `prorated` flag on a recurring sum or unique
    count metric with a standard, graduated or volume model (plans validates the flag; a
    weighted sum is time-weighted already, so its units are priced as they are)."""
    metric = charge.billable_metric
    return (
        charge.prorated
        and metric.recurring
        and metric.aggregation_type in PRORATED_AGGREGATIONS
        and charge.charge_model in charge_models.PRORATED_MODELS
    )


def _prorated_period(subscription: Subscription, period: periods.Period) -> ProratedPeriod:
    return ProratedPeriod(
        external_subscription_id=subscription.external_id,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        full_days=period.full_days,
        timezone=periods.subscription_timezone(subscription),
    )


def _scope(subscription: Subscription, bucket: Bucket, period: periods.Period) -> dict[str, Any]:
    """The aggregation arguments of one subscription's bucket over `period`."""
    return {
        "external_subscription_ids": [subscription.external_id],
        "from_datetime": period.from_datetime,
        "to_datetime": period.to_datetime,
        "filters": bucket.filters,
        "exclude_filters": bucket.exclude_filters,
    }


def _prorated_scope(subscription: Subscription, bucket: Bucket, period: periods.Period) -> dict[str, Any]:
    """`_scope` plus what prorating needs: the full period's local days and the timezone."""
    return {
        **_scope(subscription, bucket, period),
        "full_days": period.full_days,
        "timezone": periods.subscription_timezone(subscription),
    }


class DirectUsage:
    """One aggregation query per charge bucket of one subscription."""

    def prorated(
        self,
        subscription: Subscription,
        metric: BillableMetric,
        bucket: Bucket,
        period: periods.Period,
        *,
        with_events: bool = False,
    ) -> ProratedAggregationResult:
        return aggregate_prorated(metric, with_events=with_events, **_prorated_scope(subscription, bucket, period))

    def prorated_grouped(
        self, subscription: Subscription, metric: BillableMetric, bucket: Bucket, period: periods.Period, key: str
    ) -> dict[str | None, ProratedAggregationResult]:
        return aggregate_prorated_grouped(metric, grouped_by=key, **_prorated_scope(subscription, bucket, period))

    def get(
        self,
        subscription: Subscription,
        metric: BillableMetric,
        bucket: Bucket,
        period: periods.Period,
        *,
        with_event_values: bool = False,
    ) -> AggregationResult:
        return aggregate(metric, with_event_values=with_event_values, **_scope(subscription, bucket, period))

    def grouped(
        self, subscription: Subscription, metric: BillableMetric, bucket: Bucket, period: periods.Period, key: str
    ) -> dict[str | None, AggregationResult]:
        return aggregate_grouped(metric, grouped_by=key, **_scope(subscription, bucket, period))


class BatchUsage(DirectUsage):
    """Aggregates the plain buckets of many subscription-periods up front, one query per bucket
    (metrics.aggregation.aggregate_subscriptions); anything else falls back to one query."""

    def __init__(self, items: Iterable[tuple[Subscription, periods.Period]]) -> None:
        self._cache: dict[tuple[Any, ...], AggregationResult] = {}
        self._prorated_cache: dict[tuple[Any, ...], ProratedAggregationResult] = {}
        wanted: dict[tuple[Any, ...], tuple[BillableMetric, Bucket, dict[str, tuple[datetime, datetime]]]] = {}
        # Prorated buckets: keyed by bucket and whether the steps are needed (graduated).
        wanted_prorated: dict[tuple[Any, ...], tuple[BillableMetric, Bucket, bool, dict[str, ProratedPeriod]]] = {}
        for subscription, period in items:
            for charge in arrears_charges(subscription):
                properties = charge_models.properties_for(charge)
                if is_prorated(charge):
                    if properties.get("grouped_by"):
                        continue
                    with_events = charge.charge_model == "graduated"
                    for bucket in charge_buckets(charge):
                        key = (*bucket.key(charge.billable_metric), with_events)
                        entry_p = wanted_prorated.setdefault(key, (charge.billable_metric, bucket, with_events, {}))
                        entry_p[3][subscription.external_id] = _prorated_period(subscription, period)
                    continue
                if _needs_event_values(charge.charge_model, properties) or properties.get("grouped_by"):
                    continue
                metric = charge.billable_metric
                for bucket in charge_buckets(charge):
                    if bucket.charge_filter is not None:
                        filter_properties = charge_models.properties_for(charge, bucket.charge_filter)
                        if _needs_event_values(charge.charge_model, filter_properties):
                            continue
                    key = bucket.key(metric)
                    entry = wanted.setdefault(key, (metric, bucket, {}))
                    entry[2][subscription.external_id] = (period.from_datetime, period.to_datetime)
        for key, (metric, bucket, by_subscription) in wanted.items():
            results = aggregate_subscriptions(
                metric,
                periods=[(sub, start, end) for sub, (start, end) in by_subscription.items()],
                filters=bucket.filters,
                exclude_filters=bucket.exclude_filters,
            )
            for sub, result in results.items():
                start, end = by_subscription[sub]
                self._cache[(*key, sub, start, end)] = result
        for key, (metric, bucket, with_events, prorated_periods) in wanted_prorated.items():
            prorated_results = aggregate_prorated_subscriptions(
                metric,
                periods=list(prorated_periods.values()),
                filters=bucket.filters,
                exclude_filters=bucket.exclude_filters,
                with_events=with_events,
            )
            for sub, prorated_result in prorated_results.items():
                target = prorated_periods[sub]
                self._prorated_cache[(*key, sub, target.from_datetime, target.to_datetime)] = prorated_result

    def prorated(
        self,
        subscription: Subscription,
        metric: BillableMetric,
        bucket: Bucket,
        period: periods.Period,
        *,
        with_events: bool = False,
    ) -> ProratedAggregationResult:
        cached = self._prorated_cache.get(
            (*bucket.key(metric), with_events, subscription.external_id, period.from_datetime, period.to_datetime)
        )
        if cached is not None:
            return cached
        return super().prorated(subscription, metric, bucket, period, with_events=with_events)

    def get(
        self,
        subscription: Subscription,
        metric: BillableMetric,
        bucket: Bucket,
        period: periods.Period,
        *,
        with_event_values: bool = False,
    ) -> AggregationResult:
        if not with_event_values:
            cached = self._cache.get(
                (*bucket.key(metric), subscription.external_id, period.from_datetime, period.to_datetime)
            )
            if cached is not None:
                return cached
        return super().get(subscription, metric, bucket, period, with_event_values=with_event_values)


# --------------------------------------------------------------------------------------------
# Fees


def billable_charges(subscription: Subscription) -> list[Charge]:
    """The plan's live charges (prefetched by `with_billing_relations`)."""
    return [charge for charge in subscription.plan.charges.all() if charge.deleted_at is None]


def arrears_charges(subscription: Subscription) -> list[Charge]:
    """The live charges a period's invoice bills: pay-in-advance charges were billed event by
    event as the events arrived (`pay_in_advance_fee`), never again at the period's end."""
    return [charge for charge in billable_charges(subscription) if not charge.pay_in_advance]


def with_billing_relations(queryset: Any) -> Any:
    """Subscriptions with everything billing reads, in a constant number of queries."""
    charges = (
        Charge.objects.filter(deleted_at__isnull=True)
        .select_related("billable_metric")
        .prefetch_related(
            "taxes",
            "billable_metric__filters",
            Prefetch("filters", queryset=ChargeFilter.objects.filter(deleted_at__isnull=True)),
        )
        .order_by("created_at", "id")
    )
    return queryset.select_related("customer", "plan", "previous_subscription").prefetch_related(
        "plan__taxes", Prefetch("plan__charges", queryset=charges)
    )


def plan_currency(subscription: Subscription) -> str:
    return str(subscription.plan.amount.currency)


def _fee(subscription: Subscription, currency: str, precise: Decimal, **fields: Any) -> Fee:
    return Fee(
        subscription=subscription,
        currency=currency,
        precise_amount=precise,
        amount=round_amount(precise, currency),
        **fields,
    )


def _billable_fraction(subscription: Subscription, period: periods.Period) -> Decimal:
    """The part of the full period to charge: the days of `period` after the free trial."""
    trial_end = periods.trial_end(subscription)
    if trial_end is None or trial_end <= period.from_datetime:
        return period.fraction
    if trial_end >= period.to_datetime:
        return ZERO
    tz = periods.subscription_timezone(subscription)
    plan = subscription.plan
    after_trial = periods.billing_period(
        interval=plan.interval,
        billing_time=subscription.billing_time,
        anchor=subscription.subscription_at,
        at=trial_end,
        tz=tz,
        clip_from=trial_end,
    )
    after_trial = periods.clip_to(after_trial, period.to_datetime, tz)
    return Decimal(after_trial.days) / Decimal(period.full_days)


def subscription_fee(subscription: Subscription, period: periods.Period) -> Fee:
    plan = subscription.plan
    currency = plan_currency(subscription)
    fraction = _billable_fraction(subscription, period)
    price = plan.amount.amount
    precise = price * fraction
    return _fee(
        subscription,
        currency,
        precise,
        fee_type=FeeType.SUBSCRIPTION,
        units=Decimal(1),
        unit_amount=precise,
        pay_in_advance=plan.pay_in_advance,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        invoice_display_name=plan.invoice_display_name or plan.name,
        amount_details={
            "plan_amount": _s(price),
            "days": period.days,
            "full_days": period.full_days,
            "fraction": _s(fraction),
        },
    )


def _s(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


def _price(
    charge: Charge,
    charge_filter: ChargeFilter | None,
    result: AggregationResult,
    currency: str,
) -> charge_models.ChargeResult:
    properties = charge_models.properties_for(charge, charge_filter)
    return charge_models.compute(
        charge.charge_model,
        properties,
        units=result.units,
        events_count=result.events_count,
        event_values=result.event_values,
        precise_total_amount=from_cents(result.precise_total_amount_cents, currency),
    )


def _by_group(groups: dict[str | None, _R], empty: _R) -> list[tuple[str | None, _R]]:
    """A grouped charge's results in a stable order (values, then events without the key);
    Lago's single empty fee when the period has no events."""
    return sorted((groups or {None: empty}).items(), key=lambda item: (item[0] is None, item[0] or ""))


def charge_fees(
    subscription: Subscription,
    charge: Charge,
    period: periods.Period,
    *,
    usage: DirectUsage,
    with_true_up: bool = True,
) -> list[Fee]:
    """The fees of one charge over `period`: per bucket (filter, remainder), per group when the
    charge is grouped (on its first grouping key), then a true-up up to the charge's (prorated)
    spending minimum."""
    currency = plan_currency(subscription)
    metric = charge.billable_metric
    name = charge.invoice_display_name or metric.name
    fees: list[Fee] = []
    for bucket in charge_buckets(charge):
        properties = charge_models.properties_for(charge, bucket.charge_filter)
        group_key = next((key for key in properties.get("grouped_by") or [] if key), None)
        priced: list[tuple[str | None, charge_models.ChargeResult, int]]
        if is_prorated(charge):
            priced = _priced_prorated(subscription, charge, bucket, period, properties, group_key, usage)
        else:
            if group_key:
                empty = AggregationResult(units=ZERO, events_count=0)
                results = _by_group(usage.grouped(subscription, metric, bucket, period, group_key), empty)
            else:
                with_values = _needs_event_values(charge.charge_model, properties)
                results = [(None, usage.get(subscription, metric, bucket, period, with_event_values=with_values))]
            priced = [
                (value, _price(charge, bucket.charge_filter, result, currency), result.events_count)
                for value, result in results
            ]
        for value, result, events_count in priced:
            fees.append(
                _fee(
                    subscription,
                    currency,
                    result.amount,
                    fee_type=FeeType.CHARGE,
                    charge=charge,
                    charge_filter=bucket.charge_filter,
                    pay_in_advance=False,
                    from_datetime=period.from_datetime,
                    to_datetime=period.to_datetime,
                    invoice_display_name=_display_name(charge, bucket),
                    units=result.units,
                    events_count=events_count,
                    unit_amount=result.unit_amount,
                    amount_details=result.details,
                    grouped_by={group_key: value} if group_key and value is not None else {},
                )
            )
    if with_true_up and charge.min_amount and charge.min_amount > 0:
        minimum = charge.min_amount * period.fraction
        billed = sum((fee.amount for fee in fees), ZERO)
        if round_amount(minimum, currency) > billed:
            precise = minimum - billed
            fees.append(
                _fee(
                    subscription,
                    currency,
                    precise,
                    fee_type=FeeType.CHARGE,
                    charge=charge,
                    units=Decimal(1),
                    unit_amount=precise,
                    pay_in_advance=False,
                    from_datetime=period.from_datetime,
                    to_datetime=period.to_datetime,
                    invoice_display_name=f"{name} - true-up",
                    amount_details={"true_up": True, "min_amount": _s(minimum), "billed_amount": _s(billed)},
                )
            )
    return fees


def _priced_prorated(
    subscription: Subscription,
    charge: Charge,
    bucket: Bucket,
    period: periods.Period,
    properties: dict[str, Any],
    group_key: str | None,
    usage: DirectUsage,
) -> list[tuple[str | None, charge_models.ChargeResult, int]]:
    """A prorated charge's (group value, price, events count) for one bucket: units weighted by
    the days they existed, priced by charge_models.compute_prorated. The price's units are the
    prorated units (what is priced, as Lago's fee); its details keep the full units."""
    metric = charge.billable_metric
    if group_key:
        # A grouped charge is standard (the only prorated model with grouped_by): no steps needed.
        empty = ProratedAggregationResult(units=ZERO, prorated_units=ZERO, events_count=0)
        results = _by_group(usage.prorated_grouped(subscription, metric, bucket, period, group_key), empty)
    else:
        with_events = charge.charge_model == "graduated"
        results = [(None, usage.prorated(subscription, metric, bucket, period, with_events=with_events))]
    return [
        (
            value,
            charge_models.compute_prorated(
                charge.charge_model,
                properties,
                units=result.units,
                prorated_units=result.prorated_units,
                events=[(e.units, e.prorated_units) for e in result.events] if result.events is not None else None,
            ),
            result.events_count,
        )
        for value, result in results
    ]


def _display_name(charge: Charge, bucket: Bucket) -> str:
    name = charge.invoice_display_name or charge.billable_metric.name
    if bucket.charge_filter is None:
        return name
    return bucket.charge_filter.invoice_display_name or f"{name} {_describe(bucket.filters)}"


def _describe(filters: Filters | None) -> str:
    return ", ".join(f"{key}: {'/'.join(values)}" for key, values in (filters or {}).items())


def subscription_fees(
    subscription: Subscription,
    window: BillingWindow,
    *,
    usage: DirectUsage | None = None,
    with_true_up: bool = True,
) -> list[Fee]:
    """Every fee of `window`, unsaved (invoice unset), in invoice order: the subscription fee
    first, then each charge's fees in the plan's order."""
    usage = usage or DirectUsage()
    fees: list[Fee] = []
    if window.fee_period is not None:
        fees.append(subscription_fee(subscription, window.fee_period))
    if window.charges_period is not None:
        for charge in arrears_charges(subscription):
            fees.extend(
                charge_fees(subscription, charge, window.charges_period, usage=usage, with_true_up=with_true_up)
            )
    return fees


# --------------------------------------------------------------------------------------------
# Pay-in-advance charges: priced event by event, as the events arrive

# Lago allows pay in advance for these aggregations only (plans validates it).
PAY_IN_ADVANCE_AGGREGATIONS = (AggregationType.COUNT, AggregationType.SUM, AggregationType.UNIQUE_COUNT)


def _bucket_matches(bucket: Bucket, properties: Any) -> bool:
    """Does an event with `properties` fall in `bucket`? The SQL's rule (metrics.aggregation):
    every key of the filter holds one of its values, and no outranking filter matches whole."""

    def all_match(conditions: Filters) -> bool:
        return all(event_text_value(properties, key) in set(values) for key, values in conditions.items())

    return (not bucket.filters or all_match(bucket.filters)) and not any(
        all_match(other) for other in bucket.exclude_filters
    )


def event_bucket(charge: Charge, properties: Any) -> Bucket:
    """The bucket (charge filter, or the remainder) that prices an event of `charge`."""
    buckets = charge_buckets(charge)
    return next((bucket for bucket in buckets if _bucket_matches(bucket, properties)), buckets[-1])


def _advance_value(metric: BillableMetric, properties: Any) -> Decimal | str | None:
    """What one event adds: 1 (count), its number (sum), its value (unique count); None when the
    event carries no usable value (Lago creates no fee for it either)."""
    kind = metric.aggregation_type
    if kind == AggregationType.COUNT:
        return Decimal(1)
    if kind == AggregationType.SUM:
        return event_numeric_value(properties, metric.field_name)
    if kind == AggregationType.UNIQUE_COUNT:
        return event_scalar_text(properties, metric.field_name)
    return None


def _removes(properties: Any) -> bool:
    return isinstance(properties, dict) and properties.get("operation_type") == "remove"


def pay_in_advance_fee(subscription: Subscription, charge: Charge, event: Event) -> Fee | None:
    """The fee `event` costs on the pay-in-advance `charge` (unsaved; invoice unset), or None
    when the charge cannot price it (no usable value, an aggregation Lago never bills in advance).

    As Lago (Charges::ApplyPayInAdvanceChargeModelService): the increment of the charge model's
    amount that this event causes within its charges period, price(units before + the event's)
    - price(units before), so tiers, packages and free units run across the whole period.
    "Before" is every event of the period that sorts before this one by (timestamp, id): events
    of the same millisecond (a batch sent without timestamps) count in the order they were stored.
    A unique count value that is already active, or a removal, adds nothing (a zero fee). Never
    negative: a negative sum costs 0 (a refund is a credit note)."""
    metric = charge.billable_metric
    if metric.aggregation_type not in PAY_IN_ADVANCE_AGGREGATIONS:
        return None
    own = _advance_value(metric, event.properties)
    if own is None:
        return None
    currency = plan_currency(subscription)
    period = periods.subscription_charges_period(subscription, event.timestamp)
    bucket = event_bucket(charge, event.properties)
    properties = charge_models.properties_for(charge, bucket.charge_filter)
    filters: Filters = dict(bucket.filters or {})
    group_key = next((key for key in properties.get("grouped_by") or [] if key), None)
    group_value = event_text_value(event.properties, group_key) if group_key else None
    if group_key is not None and group_value is not None:
        filters[group_key] = [v for v in filters.get(group_key, [group_value]) if v == group_value]
    with_values = _needs_event_values(charge.charge_model, properties)
    scope: dict[str, Any] = {
        "external_subscription_ids": [subscription.external_id],
        "from_datetime": period.from_datetime,
        "to_datetime": event.timestamp,
        "exclude_filters": bucket.exclude_filters,
    }
    before = aggregate(metric, filters=filters or None, with_event_values=with_values, **scope)
    same_instant = [
        other
        for other in Event.objects.filter(
            external_subscription_id=event.external_subscription_id,
            code=event.code,
            timestamp=event.timestamp,
            id__lt=event.id,
        ).order_by("id")
        if _bucket_matches(bucket, other.properties)
        and (group_key is None or event_text_value(other.properties, group_key) == group_value)
    ]
    units = before.units
    count = before.events_count
    values = list(before.event_values or ())
    precise_cents = before.precise_total_amount_cents
    if metric.aggregation_type == AggregationType.UNIQUE_COUNT:
        field_name = metric.field_name
        tie_values = [(_advance_value(metric, other.properties), _removes(other.properties)) for other in same_instant]
        wanted = sorted({str(own)} | {str(value) for value, _ in tie_values if value is not None})
        active = {
            value
            for value, result in aggregate_grouped(
                metric, grouped_by=field_name, filters={**filters, field_name: wanted}, **scope
            ).items()
            if result.units > 0
        }
        for value, removes in tie_values:
            if value is None:
                continue
            if removes and value in active:
                active.discard(value)
                units -= 1
            elif not removes and value not in active:
                active.add(value)  # type: ignore[arg-type]  # a unique count's values are str
                units += 1
            count += 1
            values.append(Decimal(1))
        increment = ZERO if _removes(event.properties) or own in active else Decimal(1)
        own_value = Decimal(1)
    else:
        for other in same_instant:
            value = _advance_value(metric, other.properties)
            if value is None:
                continue
            units += value  # type: ignore[operator]  # a count's or sum's value is a Decimal
            count += 1
            values.append(value)  # type: ignore[arg-type]  # likewise
            precise_cents += other.precise_total_amount_cents or ZERO
        increment = own_value = own  # type: ignore[assignment]  # likewise
    own_cents = event.precise_total_amount_cents or ZERO

    def price(units: Decimal, count: int, values: list[Decimal], cents: Decimal) -> charge_models.ChargeResult:
        return charge_models.compute(
            charge.charge_model,
            properties,
            units=units,
            events_count=count,
            event_values=values if with_values else None,
            precise_total_amount=from_cents(cents, currency),
        )

    priced_before = price(units, count, values, precise_cents)
    priced_after = price(units + increment, count + 1, [*values, own_value], precise_cents + own_cents)
    precise = max(priced_after.amount - priced_before.amount, ZERO)
    return _fee(
        subscription,
        currency,
        precise,
        fee_type=FeeType.CHARGE,
        charge=charge,
        charge_filter=bucket.charge_filter,
        units=increment,
        events_count=1,
        unit_amount=precise / increment if increment else ZERO,
        pay_in_advance=True,
        pay_in_advance_event_id=event.id,
        pay_in_advance_event_transaction_id=event.transaction_id,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        invoice_display_name=_display_name(charge, bucket),
        grouped_by={group_key: group_value} if group_key is not None and group_value is not None else {},
        amount_details={
            "units_before": _s(units),
            "units_after": _s(units + increment),
            "amount_before": _s(priced_before.amount),
            "amount_after": _s(priced_after.amount),
            "after": priced_after.details,
        },
    )
