"""Charges and their filters: Lago's validation rules, saving a plan's charges (soft-deleting the
removed ones), retiring a deleted metric's charges, and syncing metrics' pay-in-advance flags."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from billing_project.money import from_cents
from metrics import services as metrics_services
from metrics.models import AggregationType, BillableMetric

from . import charge_models
from ._service_helpers import _check_cents, _now, _taxes_by_codes
from .errors import NotFoundError, PlansError, merge_details
from .models import Charge, ChargeFilter, Plan

ALL_FILTER_VALUES = charge_models.ALL_FILTER_VALUES


def _metric_for(spec: Mapping[str, Any]) -> BillableMetric:
    """A charge names its metric by `billable_metric_id` (Lago's lago_id) or, as a convenience,
    `billable_metric_code`."""
    metric_id = spec.get("billable_metric_id")
    metric_code = spec.get("billable_metric_code")
    metrics = BillableMetric.live.all()
    metric = None
    if metric_id:
        try:
            metric = metrics.filter(pk=str(metric_id)).first()
        except (ValidationError, ValueError):  # not a uuid: no such metric
            metric = None
    elif metric_code:
        metric = metrics.filter(code=metric_code).first()
    else:
        raise PlansError.field("billable_metric_id", "value_is_mandatory")
    if metric is None:
        raise NotFoundError("billable_metric")
    return metric


def _check_filter_values(metric: BillableMetric, values: Any, errors: dict[str, list[str]]) -> None:
    """Filter values must name the metric's filter keys and values (or Lago's wildcard)."""
    allowed = {f.key: set(map(str, f.values)) for f in metric.filters.all()}
    if not isinstance(values, Mapping) or not values:
        merge_details(errors, {"filters": ["invalid_filter_values"]})
        return
    for key, chosen in values.items():
        if key not in allowed or not isinstance(chosen, list) or not chosen:
            merge_details(errors, {"filters": ["invalid_filter_values"]})
            return
        for value in chosen:
            if value != ALL_FILTER_VALUES and str(value) not in allowed[key]:
                merge_details(errors, {"filters": ["invalid_filter_values"]})
                return


def _charge_rules(
    *,
    metric: BillableMetric,
    charge_model: str,
    properties: Mapping[str, Any],
    pay_in_advance: bool,
    prorated: bool,
    min_amount_cents: int | None,
    filters: Sequence[Mapping[str, Any]],
) -> dict[str, list[str]]:
    """Lago's charge rules that need the metric; {} when the charge is valid."""
    errors: dict[str, list[str]] = {}
    merge_details(errors, charge_models.validate_properties(charge_model, properties))
    if errors.get("charge_model"):
        return errors
    if pay_in_advance:
        if (
            metric.aggregation_type not in charge_models.PAY_IN_ADVANCE_AGGREGATIONS
            or charge_model in charge_models.PAY_IN_ADVANCE_EXCLUDED_MODELS
        ):
            merge_details(errors, {"pay_in_advance": ["invalid_aggregation_type_or_charge_model"]})
        if min_amount_cents:
            merge_details(errors, {"min_amount_cents": ["not_compatible_with_pay_in_advance"]})
    if prorated and (not metric.recurring or charge_model not in charge_models.PRORATED_MODELS):
        merge_details(errors, {"prorated": ["invalid_billable_metric_or_charge_model"]})
    if charge_model == "dynamic" and metric.aggregation_type != AggregationType.SUM:
        merge_details(errors, {"charge_model": ["invalid_aggregation_type_or_charge_model"]})
    if charge_model == "percentage" and metric.aggregation_type == AggregationType.LATEST:
        merge_details(errors, {"billable_metric": ["invalid_value"]})
    seen_values = []
    for charge_filter in filters:
        values = charge_filter.get("values")
        _check_filter_values(metric, values, errors)
        if values in seen_values:
            merge_details(errors, {"filters": ["value_already_exist"]})
        seen_values.append(values)
        merged = {**properties, **(charge_filter.get("properties") or {})}
        merge_details(errors, charge_models.validate_properties(charge_model, merged))
    return errors


def _charge_fields(spec: Mapping[str, Any], metric: BillableMetric, currency: str) -> dict[str, Any]:
    charge_model = spec.get("charge_model")
    if not charge_model:
        raise PlansError.field("charge_model", "value_is_mandatory")
    if charge_model not in charge_models.CHARGE_MODELS:
        raise PlansError.field("charge_model", "value_is_invalid")
    raw_properties = spec.get("properties")
    if raw_properties is None:
        raw_properties = charge_models.default_properties(charge_model)
    if not isinstance(raw_properties, Mapping):
        raise PlansError.field("properties", "value_is_invalid")
    properties = charge_models.clean_properties(charge_model, raw_properties)
    filters = list(spec.get("filters") or [])
    _check_cents("min_amount_cents", spec.get("min_amount_cents"), required=False)
    pay_in_advance = bool(spec.get("pay_in_advance") or False)
    prorated = bool(spec.get("prorated") or False)
    errors = _charge_rules(
        metric=metric,
        charge_model=charge_model,
        properties=properties,
        pay_in_advance=pay_in_advance,
        prorated=prorated,
        min_amount_cents=spec.get("min_amount_cents"),
        filters=filters,
    )
    if errors:
        raise PlansError(errors)
    invoiceable = spec.get("invoiceable")
    return {
        "billable_metric": metric,
        "charge_model": charge_model,
        "properties": properties,
        "pay_in_advance": pay_in_advance,
        "prorated": prorated,
        # Only a pay-in-advance charge can skip invoices (its fees are collected as they happen).
        "invoiceable": True if invoiceable is None or not pay_in_advance else bool(invoiceable),
        "min_amount": from_cents(spec.get("min_amount_cents") or 0, currency),
        "invoice_display_name": spec.get("invoice_display_name") or "",
        "filters": [
            {
                "id": f.get("id"),
                "values": f.get("values"),
                "properties": charge_models.clean_properties(charge_model, f.get("properties") or {}),
                "invoice_display_name": f.get("invoice_display_name") or "",
            }
            for f in filters
        ],
    }


# The charge attributes that decide how periods were billed: frozen once subscriptions exist.
_FROZEN_CHARGE_FIELDS = ("billable_metric", "charge_model", "pay_in_advance", "prorated", "invoiceable")


def _filters_sync(charge: Charge, filters: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Keep filters named by `id` or whose `values` are unchanged (updating them), soft-delete the
    others and add the new ones: fees already billed keep pointing at their filter."""
    existing = list(charge.filters.filter(deleted_at__isnull=True))
    kept = set()
    for spec in filters:
        match = next((f for f in existing if spec.get("id") and str(f.pk) == str(spec["id"])), None)
        if match is None or match.pk in kept:
            match = next((f for f in existing if f.values == spec["values"] and f.pk not in kept), None)
        if match is None:
            match = ChargeFilter(charge=charge, values=spec["values"])
        match.values = spec["values"]
        match.properties = spec["properties"]
        match.invoice_display_name = spec["invoice_display_name"]
        match.save()
        kept.add(match.pk)
    ChargeFilter.objects.filter(pk__in=[f.pk for f in existing if f.pk not in kept]).update(deleted_at=now)


def _metrics_priced_in_advance(metric_ids: list[Any]) -> list[Any]:
    """Which of `metric_ids` a live pay-in-advance charge prices (the truth behind metrics'
    `has_pay_in_advance_charges` flag)."""
    return list(
        Charge.objects.filter(billable_metric_id__in=metric_ids, pay_in_advance=True, deleted_at__isnull=True)
        .values_list("billable_metric_id", flat=True)
        .distinct()
    )


def pay_in_advance_flags_sync(*, metric_ids: Iterable[Any] | None = None) -> int:
    """Recompute metrics' `has_pay_in_advance_charges` from the charges (for `metric_ids`, or
    every metric): ingestion announces a new event to invoicing when its metric's flag is set.
    Every service that creates, changes or retires a pay-in-advance charge calls it in its
    own transaction; `manage.py sync_pay_in_advance_flags` runs it for every metric. Returns the
    number of flags changed."""
    ids = None if metric_ids is None else {metric_id for metric_id in metric_ids if metric_id is not None}
    if ids is not None and not ids:
        return 0
    return metrics_services.billable_metrics_pay_in_advance_sync(
        metric_ids=ids, priced_among=_metrics_priced_in_advance
    )


def charge_code_next(taken: Iterable[str], base: str) -> str:
    """Lago's default charge code (app/services/charges/generate_code_service.rb): the metric's
    code, or `<code>_<n>` with n one more than the highest suffix in use (at least 2)."""
    taken = set(taken)
    if base not in taken:
        return base
    prefix = f"{base}_"
    suffixes = [int(code[len(prefix) :]) for code in taken if code.startswith(prefix) and code[len(prefix) :].isdigit()]
    return f"{base}_{max(suffixes, default=1) + 1}"


def _check_code(code: Any) -> str | None:
    if code is None or code == "":
        return None
    if not isinstance(code, str) or "/" in code or len(code) > 255:
        raise PlansError.field("code", "value_is_invalid")
    return code


def _charges_sync(plan: Plan, specs: Sequence[Mapping[str, Any]], *, attached: bool, now: datetime) -> None:
    """Make the plan's live charges those of `specs`: a spec with the `id` of a live charge
    updates it, one without creates a charge, live charges not named are soft-deleted (first,
    so a new charge may take a removed one's code). Codes: as given, else kept, else the
    metric's (charge_code_next); two live charges of a plan never share one."""
    currency = str(plan.amount.currency)
    live = {str(c.pk): c for c in plan.charges.filter(deleted_at__isnull=True).select_related("billable_metric")}
    # Metrics whose pay-in-advance flag this change may turn (a charge that bills in advance
    # before or after it): the flags are synced at the end, in this transaction.
    in_advance_metric_ids = {c.billable_metric_id for c in live.values() if c.pay_in_advance}
    matched: list[Charge | None] = []
    claimed: set[str] = set()
    for spec in specs:
        if not isinstance(spec, Mapping):
            raise PlansError.field("charges", "value_is_invalid")
        charge = live.get(str(spec.get("id") or ""))
        if charge is not None and str(charge.pk) not in claimed:
            claimed.add(str(charge.pk))
            matched.append(charge)
        else:
            matched.append(None)
    Charge.objects.filter(pk__in=[pk for pk in live if pk not in claimed]).update(deleted_at=now)
    ChargeFilter.objects.filter(charge_id__in=[pk for pk in live if pk not in claimed]).update(deleted_at=now)
    asked = [_check_code(spec.get("code")) for spec in specs]
    given = [code for code in asked if code]
    if len(given) != len(set(given)):
        raise PlansError.field("code", "value_already_exist")
    # Codes held after this change: the ones asked for, and those kept by unnamed charges.
    taken = set(given) | {c.code for c, code in zip(matched, asked, strict=True) if c is not None and not code}
    for spec, charge, code in zip(specs, matched, asked, strict=True):
        metric = _metric_for(spec)
        fields = _charge_fields(spec, metric, currency)
        taxes = _taxes_by_codes(spec.get("tax_codes")) if spec.get("tax_codes") is not None else None
        filters = fields.pop("filters")
        if charge is not None:
            if attached:
                changed = [name for name in _FROZEN_CHARGE_FIELDS if getattr(charge, name) != fields[name]]
                if changed:
                    raise PlansError({name: ["attached_to_subscriptions"] for name in changed})
            for name, value in fields.items():
                setattr(charge, name, value)
            charge.code = code or charge.code
        else:
            code = code or charge_code_next(taken, metric.code)
            taken.add(code)
            charge = Charge(plan=plan, code=code, **fields)
        with _charge_code_taken_is_refused():
            charge.save()
        if charge.pay_in_advance:
            in_advance_metric_ids.add(charge.billable_metric_id)
        if taxes is not None:
            charge.taxes.set(taxes)
        _filters_sync(charge, filters, now)
    pay_in_advance_flags_sync(metric_ids=in_advance_metric_ids)


@contextmanager
def _charge_code_taken_is_refused() -> Iterator[None]:
    """The unique (plan, code) index decides between concurrent writers: Lago's refusal, no 500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise PlansError.field("code", "value_already_exist") from None


@transaction.atomic
def charges_retire_for_metric(*, billable_metric_id: Any, now: datetime | None = None) -> int:
    """A billable metric was deleted: its charges (and their filters) are soft-deleted, as Lago
    does, so no plan prices usage that is no longer measured. Returns the number retired."""
    now = _now(now)
    charges = Charge.objects.filter(billable_metric_id=billable_metric_id, deleted_at__isnull=True)
    ChargeFilter.objects.filter(charge__in=charges, deleted_at__isnull=True).update(deleted_at=now)
    retired = charges.update(deleted_at=now)
    pay_in_advance_flags_sync(metric_ids=[billable_metric_id])
    return retired
