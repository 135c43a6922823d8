"""Alerts of a subscription (Lago's /subscriptions/{id}/alerts) and of a wallet (Lago's
/customers/{external_id}/wallets/{code}/alerts): create (one or a batch), update, delete, delete
all. Validation as Lago's UsageMonitoring::CreateAlertService (a wallet takes only the wallet
types, a subscription only the others); the database's unique indexes decide duplicates (a code
per subscription or wallet, a type per subscription and metric, a type per wallet). A new or
changed alert is evaluated at once: a subscription's through its activity row, a wallet's
inline, under the wallet's lock. A wallet alert is `decreasing` and starts from the wallet's
value at its creation (Lago's CreateAlertService), so it fires on the next fall through a
threshold, not for where the balance already stands."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from metrics.models import BillableMetric
from plans.models import Subscription

from ..errors import InvoicingError, NotFoundError
from ..wallets.models import Wallet
from .models import (
    METRIC_ALERT_TYPES,
    WALLET_ALERT_TYPES,
    Alert,
    AlertDirection,
    AlertThreshold,
    AlertType,
)

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


def _activity(subscription: Subscription | None, wallet: Wallet | None = None) -> None:
    """Evaluate the alerts: a subscription's soon (a new alert may stand crossed already), a
    wallet's now (its values are columns of the wallet, locked by the caller)."""
    from .evaluation import activities_record, wallet_alerts_evaluate_locked

    if wallet is not None:
        wallet_alerts_evaluate_locked([wallet])
    elif subscription is not None:
        activities_record(subscription_ids=[subscription.pk])


def _locked_wallet(wallet: Wallet) -> Wallet:
    from ..wallets import ledger

    return ledger.lock_wallet(wallet)


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
        message = str(error)
        if ("alert_code_unique_per_" in message or ".code" in message) and not _type_taken_on_wallet(alert):
            raise InvoicingError.field("code", "value_already_exist") from None
        raise InvoicingError.field("base", "alert_already_exists") from None
    return alert


def _type_taken_on_wallet(alert: Alert) -> bool:
    """A wallet alert repeating both the code and the type of a live one: Lago's only unique
    index on wallet alerts is the type's (idx_alerts_unique_per_type_per_wallet), so Lago
    answers `alert_already_exists` there, whichever of our two indexes refused first."""
    if alert.wallet_id is None:
        return False
    return (
        Alert.objects.filter(wallet_id=alert.wallet_id, alert_type=alert.alert_type, deleted_at__isnull=True)
        .exclude(pk=alert.pk)
        .exists()
    )


def _type_for(alert_type: Any, *, wallet: Wallet | None) -> str:
    """Lago's order: absent, unknown, then of the other kind of alertable (all `invalid_type`)."""
    if not alert_type:
        raise InvoicingError({"alert_type": ["value_is_mandatory", "value_is_invalid"]})
    if alert_type not in AlertType.values or (alert_type in WALLET_ALERT_TYPES) != (wallet is not None):
        raise InvoicingError.field("alert_type", "invalid_type")
    return str(alert_type)


def alert_create(
    *, data: Mapping[str, Any], subscription: Subscription | None = None, wallet: Wallet | None = None
) -> Alert:
    """One alert from Lago's `alert` object, on a subscription or on a wallet."""
    alert_type = _type_for(data.get("alert_type"), wallet=wallet)
    thresholds = _thresholds(data.get("thresholds"))
    metric = _metric(alert_type, data.get("billable_metric_code")) if wallet is None else None
    alert = Alert(
        alert_type=alert_type,
        billable_metric=metric,
        code=_text(data.get("code"), "code", required=True),
        name=_text(data.get("name"), "name"),
    )
    with transaction.atomic():
        if wallet is not None:
            from .evaluation import wallet_alert_value

            wallet = _locked_wallet(wallet)
            alert.wallet = wallet
            alert.direction = AlertDirection.DECREASING
            alert.previous_value = wallet_alert_value(alert, wallet)
        else:
            assert subscription is not None
            alert.external_subscription_id = subscription.external_id
        _save(alert, thresholds)
        _activity(subscription, wallet)
    return alert


def alerts_create(*, items: Any, subscription: Subscription | None = None, wallet: Wallet | None = None) -> list[Alert]:
    """Lago's batch (UsageMonitoring::Alerts::CreateBatchService): every alert or none. Each is
    made in its own savepoint, in order (a later one meets the earlier ones made, a refused one
    is gone); one refusal or more and none is kept, the answer lists every refused alert by its
    index: the params it sent (those Lago permits) and its errors as Lago words them."""
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise InvoicingError.field("alerts", "value_is_mandatory")
    if not all(isinstance(item, Mapping) for item in items):
        raise InvoicingError.field("alerts", "value_is_invalid")
    created: list[Alert] = []
    refused: dict[str, Any] = {}
    with transaction.atomic():
        for index, item in enumerate(items):
            try:
                with transaction.atomic():
                    created.append(alert_create(subscription=subscription, wallet=wallet, data=item))
            except InvoicingError as error:
                refused[str(index)] = {"params": _permitted(item, wallet=wallet), "errors": _lago_message(error)}
        if refused:
            raise InvoicingError(refused)
    return created


_PERMITTED = ("alert_type", "code", "name", "billable_metric_code", "thresholds")
_PERMITTED_THRESHOLD = ("code", "value", "recurring")


def _permitted(item: Mapping[str, Any], *, wallet: Wallet | None) -> dict[str, Any]:
    """The alert as Lago's controller permits it (its order kept): a wallet's alert has no
    billable_metric_code, a threshold only code, value and recurring."""
    keys = [k for k in _PERMITTED if k != "billable_metric_code" or wallet is None]
    params: dict[str, Any] = {}
    for key, value in item.items():
        if key not in keys:
            continue
        if key == "thresholds":
            if not isinstance(value, list):
                continue
            value = [
                {k: v for k, v in row.items() if k in _PERMITTED_THRESHOLD} for row in value if isinstance(row, Mapping)
            ]
        params[key] = value
    return params


def _lago_message(error: InvoicingError) -> str:
    """Lago's failure message: a validation failure's "Validation errors: {...}" (its messages
    as JSON), a not-found failure's code ("billable_metric_not_found")."""
    if error.details is None:
        return error.code
    return "Validation errors: " + json.dumps(error.details, separators=(",", ":"))


def alert_update(
    *, alert: Alert, data: Mapping[str, Any], subscription: Subscription | None = None, wallet: Wallet | None = None
) -> Alert:
    """Lago's update: code, name, billable metric (subscription alerts) and thresholds (all
    replaced when sent)."""
    if "code" in data:
        alert.code = _text(data.get("code"), "code", required=True)
    if "name" in data:
        alert.name = _text(data.get("name"), "name")
    if data.get("billable_metric_code") and wallet is None:
        alert.billable_metric = _metric(alert.alert_type, data["billable_metric_code"])
    thresholds = _thresholds(data["thresholds"]) if "thresholds" in data else None
    with transaction.atomic():
        if wallet is not None:
            wallet = _locked_wallet(wallet)
        _save(alert, thresholds)
        _activity(subscription, wallet)
    return alert


def alert_delete(*, alert: Alert) -> Alert:
    """Soft delete: its triggered alerts keep pointing at it."""
    alert.deleted_at = timezone.now()
    alert.save(update_fields=["deleted_at", "updated_at"])
    return alert


def alerts_delete_all(*, subscription: Subscription | None = None, wallet: Wallet | None = None) -> int:
    return live_alerts(
        external_subscription_id=subscription.external_id if subscription is not None else None, wallet=wallet
    ).update(deleted_at=timezone.now())


def live_alerts(external_subscription_id: str | None = None, *, wallet: Wallet | None = None) -> Any:
    """The live alerts of a subscription (its external id) or of a wallet."""
    rows = Alert.objects.filter(deleted_at__isnull=True)
    if wallet is not None:
        rows = rows.filter(wallet=wallet)
    else:
        rows = rows.filter(external_subscription_id=external_subscription_id, wallet__isnull=True)
    return rows.select_related("billable_metric", "wallet").prefetch_related("thresholds")


def alert_find(*, code: str, external_subscription_id: str | None = None, wallet: Wallet | None = None) -> Alert:
    alert = live_alerts(external_subscription_id, wallet=wallet).filter(code=code).first()
    if alert is None:
        raise NotFoundError("alert")
    return alert
