"""Current usage (Lago's GET /customers/{id}/current_usage): the charges of the usage period
containing `at`, priced by the very code that bills them (billing.charge_fees), taxed as an
invoice would be (before coupons, which only an invoice consumes)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, models
from django.db.models.expressions import RawSQL

from metrics import rollup_reads
from metrics.models import BillableMetric, BillableMetricFilter
from plans import periods
from plans.models import Charge, ChargeFilter, CustomerTax, Plan, Subscription, SubscriptionStatus, Tax
from plans.selectors import default_taxes

from . import billing, totals
from .models import Fee

ZERO = Decimal(0)


@dataclass
class FilterUsage:
    charge_filter: ChargeFilter | None  # None: events matching none of the charge's filters
    values: dict[str, list[str]]
    invoice_display_name: str
    units: Decimal
    events_count: int
    amount: Decimal  # rounded to the currency


@dataclass
class GroupUsage:
    grouped_by: dict[str, Any]
    units: Decimal
    events_count: int
    amount: Decimal


@dataclass
class ChargeUsage:
    charge: Charge
    units: Decimal
    events_count: int
    amount: Decimal
    filters: list[FilterUsage] = field(default_factory=list)
    grouped_usage: list[GroupUsage] = field(default_factory=list)
    fees: list[Fee] = field(default_factory=list)

    @property
    def billable_metric(self) -> Any:
        return self.charge.billable_metric


@dataclass
class CustomerUsage:
    subscription: Subscription
    from_datetime: datetime
    to_datetime: datetime
    issuing_date: date
    currency: str
    amount: Decimal
    taxes_amount: Decimal
    total_amount: Decimal
    charges_usage: list[ChargeUsage]
    # Every unsaved fee of the period, as the period's invoice would hold them.
    fees: list[Fee] = field(default_factory=list)


def current_usage_subscription(*, customer_external_id: str, external_subscription_id: str) -> Subscription | None:
    """The live customer's active subscription with everything `customer_usage` reads, in two
    queries: the subscription (customer, plan, billing timezone as billing.with_billing_relations
    loads them) with the plan's taxes and the customer's default taxes, then the plan's live
    charges with their metric, taxes, filters and the metric's filters. The related rows come as
    jsonb arrays of the same rows in the same order the prefetches read, into the prefetch caches:
    seven round trips become two (each costs 5-20 ms of scheduling on a loaded machine, and the
    ORM's compiling of each about 3 ms of Python). Elsewhere than PostgreSQL: the prefetches."""
    wanted = {
        "customer__external_id": customer_external_id,
        "customer__deleted_at__isnull": True,
        "external_id": external_subscription_id,
        "status": SubscriptionStatus.ACTIVE,
    }
    if connection.vendor != "postgresql":
        found: Subscription | None = billing.with_billing_relations(Subscription.objects.all()).filter(**wanted).first()
        return found
    subscription = (
        billing.with_billing_relations(Subscription.objects.all())
        .prefetch_related(None)
        .annotate(
            plan_taxes_json=_related_rows(Tax, Plan, "taxes", "plans_subscription.plan_id"),
            customer_taxes_json=_rows_sql(
                Tax,
                f"JOIN {CustomerTax._meta.db_table} x ON x.tax_id = t.id "
                "WHERE x.customer_id = plans_subscription.customer_id",
            ),
            organization_taxes_json=_rows_sql(Tax, "WHERE t.applied_to_organization"),
        )
        .filter(**wanted)
        .first()
    )
    if subscription is None:
        return None
    plan = subscription.plan
    _cache(plan, "taxes", _instances(Tax, subscription.plan_taxes_json))
    subscription.usage_default_taxes = default_taxes(
        customer_taxes=_instances(Tax, subscription.customer_taxes_json),
        organization_taxes=_instances(Tax, subscription.organization_taxes_json),
    )
    filters_where = "WHERE t.charge_id = plans_charge.id AND t.deleted_at IS NULL"
    charges = list(
        Charge.objects.filter(plan_id=plan.pk, deleted_at__isnull=True)
        .select_related("billable_metric")
        .annotate(
            taxes_json=_related_rows(Tax, Charge, "taxes", "plans_charge.id"),
            filters_json=_rows_sql(ChargeFilter, filters_where),
            metric_filters_json=_rows_sql(
                BillableMetricFilter, "WHERE t.billable_metric_id = plans_charge.billable_metric_id"
            ),
            # The usage rollups' watermark of the charge's metric for this subscription: the
            # aggregation's own read of it, one round trip less (rollup_reads.watermarks_known).
            watermark_json=RawSQL(  # noqa: S611 - fixed SQL; the subscription id is a parameter
                rollup_reads.watermark_sql(
                    f"(SELECT m.code FROM {BillableMetric._meta.db_table} m "
                    "WHERE m.id = plans_charge.billable_metric_id)",
                    "%s",
                ),
                [subscription.external_id],
                output_field=models.JSONField(),
            ),
        )
        .order_by("created_at", "id")
    )
    for charge in charges:
        charge.plan = plan
        _cache(charge, "taxes", _instances(Tax, charge.taxes_json))
        charge_filters = _instances(ChargeFilter, charge.filters_json)
        for charge_filter in charge_filters:
            charge_filter.charge = charge
        _cache(charge, "filters", charge_filters)
        metric = charge.billable_metric
        metric_filters = _instances(BillableMetricFilter, charge.metric_filters_json)
        for metric_filter in metric_filters:
            metric_filter.billable_metric = metric
        _cache(metric, "filters", metric_filters)
    _cache(plan, "charges", charges)
    subscription.usage_watermarks = {
        (charge.billable_metric.code, subscription.external_id): rollup_reads.watermark_from_json(charge.watermark_json)
        for charge in charges
    }
    return subscription


def _order_sql(model: type[models.Model]) -> str:
    """The model's default ordering (the prefetches' order), then its primary key."""
    terms = []
    for name in [*(str(term) for term in model._meta.ordering or ()), "pk"]:
        target = model._meta.pk if name.lstrip("-") == "pk" else model._meta.get_field(name.lstrip("-"))
        assert isinstance(target, models.Field) and target.column is not None
        terms.append(f"t.{connection.ops.quote_name(target.column)}{' DESC' if name.startswith('-') else ''}")
    return ", ".join(terms)


def _rows_sql(model: type[models.Model], source: str) -> RawSQL:
    """A jsonb array of `model`'s rows `FROM <table> t <source>`, every concrete field by attname;
    decimals as text (exact), JSON fields as they are stored."""
    pairs = []
    for model_field in model._meta.concrete_fields:
        assert model_field.column is not None
        column = f"t.{connection.ops.quote_name(model_field.column)}"
        if isinstance(model_field, models.DecimalField):
            column += "::text"
        pairs.append(f"'{model_field.attname}', {column}")
    sql = (
        f"SELECT COALESCE(jsonb_agg(jsonb_build_object({', '.join(pairs)}) ORDER BY {_order_sql(model)}), "
        f"'[]'::jsonb) FROM {model._meta.db_table} t {source}"
    )
    # Only table and column names from the models' own metadata are formatted in: no input.
    return RawSQL(sql, [], output_field=models.JSONField())  # noqa: S611


def _related_rows(model: type[models.Model], owner: type[models.Model], name: str, owner_id_sql: str) -> RawSQL:
    """`_rows_sql` of a many-to-many relation `owner.name` (its through table)."""
    relation = owner._meta.get_field(name)
    assert isinstance(relation, models.ManyToManyField)
    through = relation.m2m_db_table()
    return _rows_sql(
        model,
        f"JOIN {through} x ON x.{relation.m2m_reverse_name()} = t.{model._meta.pk.column} "
        f"WHERE x.{relation.m2m_column_name()} = {owner_id_sql}",
    )


def _instances(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> list[Any]:
    """Model instances from `_rows_sql`'s rows, as the database would have loaded them."""
    fields = model._meta.concrete_fields
    names = [model_field.attname for model_field in fields]
    return [
        model.from_db(
            connection.alias, names, [model_field.to_python(row[model_field.attname]) for model_field in fields]
        )
        for row in rows
    ]


def _cache(instance: models.Model, name: str, objects: list[Any]) -> None:
    """`objects` as the prefetched `instance.<name>.all()` (what prefetch_related stores)."""
    queryset = getattr(instance, name).all()
    queryset._result_cache = objects
    queryset._prefetch_done = True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[name] = queryset


def customer_usage(*, subscription: Subscription, at: datetime) -> CustomerUsage:
    """The usage of `subscription`'s current charges period (the one containing `at`). A
    subscription loaded by billing.with_billing_relations (it carries `billing_timezone`) is used
    as it is; any other is loaded again with those relations."""
    if not hasattr(subscription, "billing_timezone"):
        subscription = billing.with_billing_relations(Subscription.objects.filter(pk=subscription.pk)).get()
    period = periods.subscription_charges_period(subscription, at)
    if subscription.terminated_at is not None and subscription.terminated_at < period.to_datetime:
        period = periods.clip_to(period, subscription.terminated_at, periods.subscription_timezone(subscription))
    currency = billing.plan_currency(subscription)
    usage = billing.DirectUsage()
    charges_usage = []
    all_fees: list[Fee] = []
    # The rollup watermarks current_usage_subscription read with the charges, if it did.
    watermarks = getattr(subscription, "usage_watermarks", None)
    known = rollup_reads.watermarks_known(watermarks) if watermarks is not None else nullcontext()
    with known:
        fees_by_charge = [
            (charge, billing.charge_fees(subscription, charge, period, usage=usage, with_true_up=False))
            for charge in billing.billable_charges(subscription)
        ]
    for charge, fees in fees_by_charge:
        all_fees.extend(fees)
        row = ChargeUsage(
            charge=charge,
            units=sum((fee.units for fee in fees), ZERO),
            events_count=sum(fee.events_count for fee in fees),
            amount=sum((fee.amount for fee in fees), ZERO),
            fees=fees,
        )
        if any(fee.charge_filter_id for fee in fees):
            for fee in fees:
                row.filters.append(
                    FilterUsage(
                        charge_filter=fee.charge_filter,
                        values=dict(fee.charge_filter.values) if fee.charge_filter else {},
                        invoice_display_name=fee.charge_filter.invoice_display_name if fee.charge_filter else "",
                        units=fee.units,
                        events_count=fee.events_count,
                        amount=fee.amount,
                    )
                )
        for fee in fees:
            if fee.grouped_by:
                row.grouped_usage.append(GroupUsage(fee.grouped_by, fee.units, fee.events_count, fee.amount))
        charges_usage.append(row)
    # The customer's default taxes when the loader read them with the subscription.
    resolver = totals.TaxResolver(subscription.customer, fallback=getattr(subscription, "usage_default_taxes", None))
    taxes = totals.taxes_compute(invoice=None, fees=all_fees, resolver=resolver, currency=currency)
    amount = sum((fee.amount for fee in all_fees), ZERO)
    tz = periods.subscription_timezone(subscription)
    return CustomerUsage(
        subscription=subscription,
        from_datetime=period.from_datetime,
        to_datetime=period.to_datetime,
        issuing_date=period.to_datetime.astimezone(ZoneInfo(tz)).date(),
        currency=currency,
        amount=amount,
        taxes_amount=taxes.amount,
        total_amount=amount + taxes.amount,
        charges_usage=charges_usage,
        fees=all_fees,
    )
