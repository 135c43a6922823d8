"""Usage alerts of a subscription (Lago's /subscriptions/{id}/alerts): create (one or a batch),
update, delete, delete all. Validation as Lago's UsageMonitoring::CreateAlertService; the
database's unique indexes decide duplicates (a code per subscription, a type per subscription
and metric). A new or changed alert is evaluated at once (its subscription's activity row)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from metrics.models import BillableMetric
from plans.models import Subscription

from ..errors import InvoicingError, NotFoundError
from .models import METRIC_ALERT_TYPES, Alert, AlertThreshold, AlertType

# Lago's UsageMonitoring::AlertThreshold::SOFT_LIMIT.
MAX_THRESHOLDS = 20
MAX_VALUE = Decimal("1e24")


def _text(value: Any, field: str, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise InvoicingError.field(field, "value_is_mandatory")
        return ""
    if not isinstance(value, str) or len(value) > 255 or "\x00" in value or ("/" in value and field == "code"):
        raise InvoicingError.field(field, "value_is_invalid")
    return value


def _thresholds(raw: Any) -> list[AlertThreshold]:
    """Lago's checks, in its order: present, at most 20, no duplicate (value, recurring), every
    value present and numeric, a recurring one positive; and at most one recurring."""
    if not raw:
        raise InvoicingError.field("thresholds", "value_is_mandatory")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not all(isinstance(t, Mapping) for t in raw):
        raise InvoicingError.field("thresholds", "value_is_invalid")
    if len(raw) > MAX_THRESHOLDS:
        raise InvoicingError.field("thresholds", "too_many_thresholds")
    rows = []
    for item in raw:
        recurring = item.get("recurring")
        if recurring not in (None, True, False, "true", "false"):
            raise InvoicingError.field("thresholds:recurring", "value_is_invalid")
        value = item.get("value")
        if value is None or value == "":
            raise InvoicingError.field("thresholds:value", "value_is_mandatory")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvoicingError.field("thresholds:value", "value_is_invalid")
        try:
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise InvoicingError.field("thresholds:value", "value_is_invalid") from None
        if not number.is_finite() or number < 0 or number > MAX_VALUE:
            raise InvoicingError.field("thresholds:value", "value_is_invalid")
        is_recurring = recurring in (True, "true")
        if is_recurring and number <= 0:
            raise InvoicingError.field("thresholds:value", "recurring_value_is_negative")
        rows.append(
            AlertThreshold(code=_text(item.get("code"), "thresholds:code"), value=number, recurring=is_recurring)
        )
    keys = [(row.value, row.recurring) for row in rows]
    if len(set(keys)) != len(keys):
        raise InvoicingError.field("thresholds", "duplicate_threshold_values")
    if sum(row.recurring for row in rows) > 1:
        raise InvoicingError.field("thresholds", "only_one_recurring_threshold")
    return rows


def _metric(alert_type: str, code: Any) -> BillableMetric | None:
    if alert_type not in METRIC_ALERT_TYPES:
        return None  # Lago validates its absence on other types; a code sent is ignored here
    if not code:
        raise InvoicingError.field("billable_metric", "value_is_mandatory")
    metric = BillableMetric.live.filter(code=str(code)).first()
    if metric is None:
        raise NotFoundError("billable_metric")
    return metric


def _activity(subscription: Subscription) -> None:
    """Evaluate the subscription's alerts soon (a new alert may stand crossed already)."""
    from .evaluation import activities_record

    activities_record(subscription_ids=[subscription.pk])


def _save(alert: Alert, thresholds: list[AlertThreshold] | None) -> Alert:
    try:
        with transaction.atomic():
            alert.save()
            if thresholds is not None:
                alert.thresholds.all().delete()
                for row in thresholds:
                    row.alert = alert
                AlertThreshold.objects.bulk_create(thresholds)
    except IntegrityError as error:
        if "alert_code_unique_per_subscription" in str(error) or ".code" in str(error):
            raise InvoicingError.field("code", "value_already_exist") from None
        raise InvoicingError.field("base", "alert_already_exists") from None
    return alert


def alert_create(*, subscription: Subscription, data: Mapping[str, Any]) -> Alert:
    """One alert from Lago's `alert` object."""
    alert_type = data.get("alert_type")
    if not alert_type:
        raise InvoicingError({"alert_type": ["value_is_mandatory", "value_is_invalid"]})
    if alert_type not in AlertType.values:
        raise InvoicingError.field("alert_type", "invalid_type")
    thresholds = _thresholds(data.get("thresholds"))
    alert = Alert(
        external_subscription_id=subscription.external_id,
        alert_type=alert_type,
        billable_metric=_metric(alert_type, data.get("billable_metric_code")),
        code=_text(data.get("code"), "code", required=True),
        name=_text(data.get("name"), "name"),
    )
    with transaction.atomic():
        _save(alert, thresholds)
        _activity(subscription)
    return alert


def alerts_create(*, subscription: Subscription, items: Any) -> list[Alert]:
    """Lago's batch: every alert or none (the first refusal answers for all)."""
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise InvoicingError.field("alerts", "value_is_mandatory")
    if not all(isinstance(item, Mapping) for item in items):
        raise InvoicingError.field("alerts", "value_is_invalid")
    with transaction.atomic():
        return [alert_create(subscription=subscription, data=item) for item in items]


def alert_update(*, alert: Alert, subscription: Subscription, data: Mapping[str, Any]) -> Alert:
    """Lago's update: code, name, billable metric and thresholds (all replaced when sent)."""
    if "code" in data:
        alert.code = _text(data.get("code"), "code", required=True)
    if "name" in data:
        alert.name = _text(data.get("name"), "name")
    if data.get("billable_metric_code"):
        alert.billable_metric = _metric(alert.alert_type, data["billable_metric_code"])
    thresholds = _thresholds(data["thresholds"]) if "thresholds" in data else None
    with transaction.atomic():
        _save(alert, thresholds)
        _activity(subscription)
    return alert


def alert_delete(*, alert: Alert) -> Alert:
    """Soft delete: its triggered alerts keep pointing at it."""
    alert.deleted_at = timezone.now()
    alert.save(update_fields=["deleted_at", "updated_at"])
    return alert


def alerts_delete_all(*, subscription: Subscription) -> int:
    return Alert.objects.filter(external_subscription_id=subscription.external_id, deleted_at__isnull=True).update(
        deleted_at=timezone.now()
    )


def live_alerts(external_subscription_id: str) -> Any:
    return (
        Alert.objects.filter(external_subscription_id=external_subscription_id, deleted_at__isnull=True)
        .select_related("billable_metric")
        .prefetch_related("thresholds")
    )


def alert_find(*, external_subscription_id: str, code: str) -> Alert:
    alert = live_alerts(external_subscription_id).filter(code=code).first()
    if alert is None:
        raise NotFoundError("alert")
    return alert
