"""Billable metric state changes (create, update, soft delete), with Lago's validation rules and
error codes. Event ingestion has its own module (ingestion.py): it is the hot path."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing_project.after_commit import send_after_commit

from .error_codes import MetricsErrorCode
from .errors import ExpressionValidationError, MetricValidationError
from .expressions import (
    ExpressionEvaluationError,
    ExpressionEvent,
    ExpressionSyntaxError,
    expression_parse,
    expression_stored_value,
    unix_seconds,
)
from .ingestion import parse_timestamp
from .models import AggregationType, BillableMetric, BillableMetricFilter, RoundingFunction
from .signals import billable_metric_deleted

MAX_TEXT_LENGTH = 255
# Lago: recurring makes no sense for these (a count, a max or a latest value does not carry over).
NON_RECURRING_TYPES = {AggregationType.COUNT, AggregationType.MAX, AggregationType.LATEST}
# Fields that decide what a metric measures; frozen while a live charge prices the metric.
MEASURING_FIELDS = (
    "code",
    "aggregation_type",
    "field_name",
    "recurring",
    "weighted_interval",
    "rounding_function",
    "rounding_precision",
    "expression",
)
EDITABLE_FIELDS = ("name", "description", *MEASURING_FIELDS)


def _validate_filters(filters: Any) -> tuple[list[tuple[str, list[str]]], dict[str, list[str]]]:
    if filters is None:
        return [], {}
    if not isinstance(filters, (list, tuple)):
        return [], {"filters": ["value_is_invalid"]}
    cleaned: list[tuple[str, list[str]]] = []
    keys: set[str] = set()
    for item in filters:
        if not isinstance(item, Mapping):
            return [], {"filters": ["value_is_invalid"]}
        key, values = item.get("key"), item.get("values")
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_TEXT_LENGTH or key in keys:
            return [], {"filters": ["value_is_invalid"]}
        if not values:
            return [], {"values": ["value_is_mandatory"]}
        if not isinstance(values, (list, tuple)) or not all(
            isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) != "" for v in values
        ):
            return [], {"filters": ["value_is_invalid"]}
        keys.add(key)
        cleaned.append((key, list(dict.fromkeys(str(v) for v in values))))
    return cleaned, {}


def billable_metric_validate(metric: BillableMetric) -> dict[str, list[str]]:
    """Lago's model validations, with its codes ({} when valid). The admin form uses it too."""
    errors: dict[str, list[str]] = {}
    if not metric.name:
        errors["name"] = ["value_is_mandatory"]
    elif len(metric.name) > MAX_TEXT_LENGTH:
        errors["name"] = ["value_is_invalid"]
    if not metric.code:
        errors["code"] = ["value_is_mandatory"]
    elif len(metric.code) > MAX_TEXT_LENGTH:
        errors["code"] = ["value_is_invalid"]
    elif BillableMetric.live.filter(code=metric.code).exclude(pk=metric.pk).exists():
        errors["code"] = ["value_already_exist"]
    if metric.aggregation_type not in AggregationType.values:
        errors["aggregation_type"] = ["value_is_invalid"]
    elif metric.aggregation_type == AggregationType.COUNT:
        metric.field_name = ""  # count_agg measures no property (Lago drops a leftover one)
    elif not metric.field_name:
        errors["field_name"] = ["value_is_mandatory"]
    elif len(metric.field_name) > MAX_TEXT_LENGTH:
        errors["field_name"] = ["value_is_invalid"]
    if not isinstance(metric.recurring, bool):
        errors["recurring"] = ["value_is_invalid"]
    elif metric.recurring and metric.aggregation_type in NON_RECURRING_TYPES:
        errors["recurring"] = ["not_compatible_with_aggregation_type"]
    if metric.weighted_interval not in ("", "seconds") or (
        metric.aggregation_type == AggregationType.WEIGHTED_SUM and metric.weighted_interval != "seconds"
    ):
        errors["weighted_interval"] = ["value_is_invalid"]
    if metric.rounding_function not in ("", *RoundingFunction.values):
        errors["rounding_function"] = ["value_is_invalid"]
    precision = metric.rounding_precision
    if precision is not None and (isinstance(precision, bool) or not isinstance(precision, int)):
        errors["rounding_precision"] = ["value_is_invalid"]
    elif precision is not None and not -15 <= precision <= 15:
        errors["rounding_precision"] = ["value_is_invalid"]
    errors.update(_validate_expression(metric))
    return errors


def _validate_expression(metric: BillableMetric) -> dict[str, list[str]]:
    """Parse the expression into `expression_ast` (None without one). A count has no field for it
    to compute (Lago: any aggregation except COUNT). A syntax error is kept on the metric, so the
    refusal can say where the expression breaks."""
    metric.expression_ast = None
    if not metric.expression:
        return {}
    if metric.aggregation_type == AggregationType.COUNT:
        return {"expression": ["value_is_invalid"]}
    try:
        metric.expression_ast = expression_parse(metric.expression)
    except ExpressionSyntaxError as error:
        metric._expression_syntax_error = error  # type: ignore[attr-defined]  # read by _refuse
        return {"expression": [MetricsErrorCode.INVALID_EXPRESSION]}
    return {}


def _refuse(metric: BillableMetric, errors: dict[str, list[str]]) -> MetricValidationError:
    syntax_error = getattr(metric, "_expression_syntax_error", None)
    if syntax_error is not None and "expression" in errors:
        return ExpressionValidationError(errors, syntax_error)
    return MetricValidationError(errors)


def _save(metric: BillableMetric, filters: list[tuple[str, list[str]]] | None) -> BillableMetric:
    try:
        with transaction.atomic():
            metric.save()
            if filters is not None:
                _replace_filters(metric, filters)
    except IntegrityError as error:
        # Two requests creating the same code at once: the partial unique index decides.
        raise MetricValidationError({"code": ["value_already_exist"]}) from error
    return metric


def _replace_filters(metric: BillableMetric, filters: list[tuple[str, list[str]]]) -> None:
    keys = [key for key, _ in filters]
    metric.filters.exclude(key__in=keys).delete()
    existing = {f.key: f for f in metric.filters.all()}
    for key, values in filters:
        current = existing.get(key)
        if current is None:
            BillableMetricFilter.objects.create(billable_metric=metric, key=key, values=values)
        elif current.values != values:
            current.values = values
            current.save(update_fields=["values"])


def billable_metric_create(
    *,
    name: str,
    code: str,
    aggregation_type: str,
    description: str = "",
    field_name: str = "",
    recurring: bool = False,
    weighted_interval: str = "",
    rounding_function: str = "",
    rounding_precision: int | None = None,
    expression: str = "",
    filters: Sequence[Mapping[str, Any]] | None = None,
) -> BillableMetric:
    metric = BillableMetric(
        name=name or "",
        code=code or "",
        description=description or "",
        aggregation_type=aggregation_type or "",
        field_name=field_name or "",
        recurring=recurring,
        weighted_interval=weighted_interval or "",
        rounding_function=rounding_function or "",
        rounding_precision=rounding_precision,
        expression=expression or "",
    )
    cleaned_filters, errors = _validate_filters(filters)
    errors = {**billable_metric_validate(metric), **errors}
    if errors:
        raise _refuse(metric, errors)
    return _save(metric, cleaned_filters)


def billable_metric_is_priced(metric: BillableMetric) -> bool:
    """Does a live charge price this metric? Reads the reverse relation that plans' Charge
    declares on BillableMetric (no import of plans: the street stays one-way)."""
    charges = getattr(metric, "charges", None)
    return charges is not None and charges.filter(deleted_at__isnull=True).exists()


def billable_metric_update(*, metric: BillableMetric, changes: Mapping[str, Any]) -> BillableMetric:
    """Apply the fields present in `changes` (Lago's PUT is partial; an explicit null clears).
    A metric priced by a live charge keeps what it measures, as in Lago: only name, description
    and filters change, the rest is silently kept."""
    priced = billable_metric_is_priced(metric)
    for field in EDITABLE_FIELDS:
        if field not in changes or (priced and field in MEASURING_FIELDS):
            continue
        value = changes[field]
        if field == "recurring":
            value = bool(value) if value is None else value
        elif field == "rounding_precision":
            pass
        elif value is None:
            value = ""
        setattr(metric, field, value)
    cleaned_filters: list[tuple[str, list[str]]] | None = None
    errors: dict[str, list[str]] = {}
    if "filters" in changes:
        cleaned_filters, errors = _validate_filters(changes["filters"] or [])
    errors = {**billable_metric_validate(metric), **errors}
    if errors:
        raise _refuse(metric, errors)
    return _save(metric, cleaned_filters)


def billable_metric_delete(*, metric: BillableMetric) -> BillableMetric:
    """Soft delete: billed fees keep pointing at it; its code is free again for a new metric.
    Plans learns through `billable_metric_deleted` (after commit) to retire the charges on it."""
    with transaction.atomic():
        metric.deleted_at = timezone.now()
        metric.save(update_fields=["deleted_at", "updated_at"])
        metric_id = metric.id
        send_after_commit(billable_metric_deleted, sender=BillableMetric, billable_metric_id=metric_id)
    return metric


def billable_metrics_pay_in_advance_sync(
    *, metric_ids: Iterable[Any] | None, priced_among: Callable[[list[Any]], Iterable[Any]]
) -> int:
    """Make `has_pay_in_advance_charges` true exactly for the metrics (of `metric_ids`; every
    metric when None) that `priced_among(ids)` lists: plans passes the query that knows its
    charges (the street stays one-way). Returns the number of flags changed.

    Call it in the transaction that changed the charges, after the change. The rows are locked
    first (FOR NO KEY UPDATE, in id order: no deadlock with another sync, nor with the key-share
    locks of charges' foreign keys), and `priced_among` runs after the lock as a new statement,
    so under READ COMMITTED it sees the charges of every transaction that synced these metrics
    before us: two concurrent charge changes on one metric never leave a stale flag."""
    with transaction.atomic():
        rows = BillableMetric.objects.select_for_update(no_key=True).order_by("pk")
        if metric_ids is not None:
            rows = rows.filter(pk__in=list(metric_ids))
        ids = list(rows.values_list("pk", flat=True))
        if not ids:
            return 0
        priced = set(priced_among(ids))
        on = [pk for pk in ids if pk in priced]
        off = [pk for pk in ids if pk not in priced]
        changed = 0
        if on:
            changed += BillableMetric.objects.filter(pk__in=on, has_pay_in_advance_charges=False).update(
                has_pay_in_advance_charges=True
            )
        if off:
            changed += BillableMetric.objects.filter(pk__in=off, has_pay_in_advance_charges=True).update(
                has_pay_in_advance_charges=False
            )
    return changed


def billable_metric_evaluate_expression(*, expression: Any, event: Any, now: datetime) -> str:
    """POST /billable_metrics/evaluate_expression: the value `expression` gives for a sample event
    (nothing stored), as ingestion would write it. Lago's codes (app/services/billable_metrics/
    evaluate_expression_service.rb): expression value_is_mandatory / invalid_expression, event
    invalid_event. The event's timestamp defaults to now."""
    if expression is None or expression == "":
        raise MetricValidationError({"expression": ["value_is_mandatory"]})
    if not isinstance(expression, str):
        raise MetricValidationError({"expression": [MetricsErrorCode.INVALID_EXPRESSION]})
    try:
        tree = expression_parse(expression)
    except ExpressionSyntaxError as error:
        raise ExpressionValidationError({"expression": [MetricsErrorCode.INVALID_EXPRESSION]}, error) from None
    invalid_event = MetricValidationError({"event": [MetricsErrorCode.INVALID_EVENT]})
    if not isinstance(event, Mapping):
        raise invalid_event
    code, raw_timestamp, properties = event.get("code"), event.get("timestamp"), event.get("properties")
    moment = now if raw_timestamp in (None, "") else parse_timestamp(raw_timestamp)
    if moment is None or not isinstance(properties, (Mapping, type(None))) or not isinstance(code, (str, type(None))):
        raise invalid_event
    sample = ExpressionEvent(code or "", unix_seconds(moment), dict(properties or {}))
    try:
        return expression_stored_value(tree, sample)
    except ExpressionEvaluationError:
        raise invalid_event from None
