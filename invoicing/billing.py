"""The fees of one billing window (invoicing.windows): the one computation invoices and current
usage share, so the two can never disagree. Usage is aggregated in SQL, one query per charge
bucket (`DirectUsage`) or per bucket for many subscriptions (`BatchUsage`); each fee is rounded
once, half-up, to the currency's minor unit, `precise_amount` keeping the charge model's figure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db.models import F, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce, NullIf

from billing_project.money import from_cents, round_amount
from customers.models import Organization
from metrics.aggregation import (
    PRORATED_AGGREGATIONS,
    AggregationResult,
    GroupKeys,
    ProratedAggregationResult,
    ProratedPeriod,
    aggregate,
    aggregate_grouped,
    aggregate_prorated,
    aggregate_prorated_grouped,
    aggregate_prorated_subscriptions,
    aggregate_subscriptions,
    group_values,
)
from metrics.models import BillableMetric
from plans import charge_models, periods
from plans.models import Charge, ChargeFilter, Subscription

from .buckets import Bucket, Filters, charge_buckets
from .models import Fee, FeeType, InvoicingReason
from .windows import BillingWindow, billing_start

ZERO = Decimal(0)
_R = TypeVar("_R")


# --------------------------------------------------------------------------------------------
# Usage: aggregation in SQL


def needs_event_values(charge_model: str, properties: dict[str, Any]) -> bool:
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


def usage_from(subscription: Subscription, period: periods.Period) -> datetime:
    """Where a period's usage starts: the period's (day-aligned) start, or the subscription's
    start instant when later. Events before a subscription starts are never billed (as Lago's
    `charges_from_datetime`, never before `started_at`)."""
    return max(period.from_datetime, billing_start(subscription))


def _prorated_period(subscription: Subscription, period: periods.Period) -> ProratedPeriod:
    return ProratedPeriod(
        external_subscription_id=subscription.external_id,
        from_datetime=usage_from(subscription, period),
        to_datetime=period.to_datetime,
        full_days=period.full_days,
        timezone=periods.subscription_timezone(subscription),
    )


def _scope(subscription: Subscription, bucket: Bucket, period: periods.Period) -> dict[str, Any]:
    """The aggregation arguments of one subscription's bucket over `period`."""
    return {
        "external_subscription_ids": [subscription.external_id],
        "from_datetime": usage_from(subscription, period),
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
        self, subscription: Subscription, metric: BillableMetric, bucket: Bucket, period: periods.Period, key: GroupKeys
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
        self, subscription: Subscription, metric: BillableMetric, bucket: Bucket, period: periods.Period, key: GroupKeys
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
                if needs_event_values(charge.charge_model, properties) or properties.get("grouped_by"):
                    continue
                metric = charge.billable_metric
                for bucket in charge_buckets(charge):
                    if bucket.charge_filter is not None:
                        filter_properties = charge_models.properties_for(charge, bucket.charge_filter)
                        if needs_event_values(charge.charge_model, filter_properties):
                            continue
                    key = bucket.key(metric)
                    entry = wanted.setdefault(key, (metric, bucket, {}))
                    entry[2][subscription.external_id] = (usage_from(subscription, period), period.to_datetime)
        for key, (metric, bucket, by_subscription) in wanted.items():
            results = aggregate_subscriptions(
                metric,
                periods=[(sub, start, end) for sub, (start, end) in by_subscription.items()],
                filters=bucket.filters,
                exclude_filters=bucket.exclude_filters,
            )
            for sub, result in results.items():
                start, end = by_subscription[sub]
                self._cache[(*key, sub, start, end)] = result  # keyed by the usage's own bounds
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
            (
                *bucket.key(metric),
                with_events,
                subscription.external_id,
                usage_from(subscription, period),
                period.to_datetime,
            )
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
                (*bucket.key(metric), subscription.external_id, usage_from(subscription, period), period.to_datetime)
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
    organization_timezone = Organization.objects.order_by("pk").values("timezone")[:1]
    return (
        queryset.select_related("customer", "plan", "previous_subscription")
        .prefetch_related("plan__taxes", Prefetch("plan__charges", queryset=charges))
        # Customer.applicable_timezone's rule in SQL, read by plans.periods.subscription_timezone.
        .annotate(
            billing_timezone=Coalesce(
                NullIf(F("customer__timezone"), Value("")),
                NullIf(Subquery(organization_timezone), Value("")),
                Value("UTC"),
            )
        )
    )


def plan_currency(subscription: Subscription) -> str:
    return str(subscription.plan.amount.currency)


def new_fee(subscription: Subscription, currency: str, precise: Decimal, **fields: Any) -> Fee:
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
    return new_fee(
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
            "plan_amount": decimal_text(price),
            "days": period.days,
            "full_days": period.full_days,
            "fraction": decimal_text(fraction),
        },
    )


def decimal_text(value: Decimal) -> str:
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
        group_key = grouping_keys(properties)
        priced: list[tuple[str | None, charge_models.ChargeResult, int]]
        if is_prorated(charge):
            priced = _priced_prorated(subscription, charge, bucket, period, properties, group_key, usage)
        else:
            if group_key:
                empty = AggregationResult(units=ZERO, events_count=0)
                results = _by_group(usage.grouped(subscription, metric, bucket, period, group_key), empty)
            else:
                with_values = needs_event_values(charge.charge_model, properties)
                results = [(None, usage.get(subscription, metric, bucket, period, with_event_values=with_values))]
            priced = [
                (value, _price(charge, bucket.charge_filter, result, currency), result.events_count)
                for value, result in results
            ]
        for value, result, events_count in priced:
            fees.append(
                new_fee(
                    subscription,
                    currency,
                    result.amount,
                    fee_type=FeeType.CHARGE,
                    charge=charge,
                    charge_filter=bucket.charge_filter,
                    pay_in_advance=False,
                    from_datetime=period.from_datetime,
                    to_datetime=period.to_datetime,
                    invoice_display_name=display_name(charge, bucket),
                    units=result.units,
                    events_count=events_count,
                    unit_amount=result.unit_amount,
                    amount_details=result.details,
                    grouped_by=grouped_by_values(group_key, value),
                )
            )
    if with_true_up and charge.min_amount and charge.min_amount > 0:
        minimum = charge.min_amount * period.fraction
        billed = sum((fee.amount for fee in fees), ZERO)
        if round_amount(minimum, currency) > billed:
            precise = minimum - billed
            fees.append(
                new_fee(
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
                    amount_details={
                        "true_up": True,
                        "min_amount": decimal_text(minimum),
                        "billed_amount": decimal_text(billed),
                    },
                )
            )
    return fees


def _priced_prorated(
    subscription: Subscription,
    charge: Charge,
    bucket: Bucket,
    period: periods.Period,
    properties: dict[str, Any],
    group_key: GroupKeys | None,
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


def grouping_keys(properties: dict[str, Any]) -> GroupKeys | None:
    """What a grouped charge groups by: every `grouped_by` key (one key as a plain string, as
    the aggregation takes it); None when the charge is not grouped."""
    keys = [key for key in properties.get("grouped_by") or [] if key]
    if not keys:
        return None
    return keys[0] if len(keys) == 1 else tuple(keys)


def grouped_by_values(keys: GroupKeys | None, value: str | None) -> dict[str, str]:
    """A fee's `grouped_by`: the group's values by key (keys the events lack are left out)."""
    if not keys or value is None:
        return {}
    return {key: found for key, found in group_values(value, keys).items() if found is not None}


def display_name(charge: Charge, bucket: Bucket) -> str:
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
    if window.reason == InvoicingReason.SUBSCRIPTION_PERIODIC:
        fees.extend(carried_over_fees(subscription, window.timestamp, usage=usage))
    return fees


def carried_over_fees(subscription: Subscription, boundary: datetime, *, usage: DirectUsage) -> list[Fee]:
    """At a renewal, a pay-in-advance charge on a recurring metric bills the units carried over
    into the new charges period, as Lago (Invoices::CalculateFeesService: the periodic invoice
    prices pay-in-advance charges of recurring metrics too). The units standing at `boundary`
    (every event since the start, before it) are priced for the new period; events in the new
    period are priced one by one on top of them (`pay_in_advance_fee` counts them as "before")."""
    renewed = periods.subscription_charges_period(subscription, boundary)
    standing = periods.Period(
        from_datetime=billing_start(subscription),
        to_datetime=boundary,  # every event before the new period, none of it
        full_from_datetime=renewed.full_from_datetime,
        full_to_datetime=renewed.full_to_datetime,
        days=renewed.days,
        full_days=renewed.full_days,
    )
    fees: list[Fee] = []
    for charge in billable_charges(subscription):
        if not (charge.pay_in_advance and charge.invoiceable and charge.billable_metric.recurring):
            continue
        for fee in charge_fees(subscription, charge, standing, usage=usage, with_true_up=False):
            if fee.units == 0:
                continue  # nothing carried over
            fee.pay_in_advance = True
            fee.from_datetime, fee.to_datetime = renewed.from_datetime, renewed.to_datetime
            fee.amount_details = {**(fee.amount_details or {}), "carried_over": True}
            fees.append(fee)
    return fees
