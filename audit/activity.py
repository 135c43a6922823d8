"""Lago's activity logs read from the audit rows Tollgate keeps forever: the change history of
the catalogue, customers and the organization (django-simple-history, the console's Activity
page) and the invoices' and credit notes' event trail (invoicing.InvoiceEvent).

One UNION query orders and pages every source together; the page's rows are then loaded per
source in bulk. An activity's id is `<source>-<row id>`, e.g. `customer-12`, `invoice_event-40`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import CharField, F, Q, QuerySet, Value

from billing_project.api.identifiers import is_path_segment

from .history import API_REASON_PREFIX
from .redact import redact

# source -> (app label, model, Lago's resource_type). The models whose history the console shows.
HISTORY_SOURCES = {
    "customer": ("customers", "Customer", "Customer"),
    "organization": ("customers", "Organization", "Organization"),
    "billable_metric": ("metrics", "BillableMetric", "BillableMetric"),
    "plan": ("plans", "Plan", "Plan"),
    "charge": ("plans", "Charge", "Charge"),
    "tax": ("plans", "Tax", "Tax"),
    "coupon": ("plans", "Coupon", "Coupon"),
}
EVENT_SOURCE = "invoice_event"
HISTORY_ACTIONS = {"+": "created", "~": "updated", "-": "deleted"}
SOURCES = ("api", "front", "system")


@dataclass(frozen=True)
class ActivityFilters:
    from_date: datetime | None = None
    to_date: datetime | None = None
    activity_types: tuple[str, ...] = ()
    activity_sources: tuple[str, ...] = ()
    user_emails: tuple[str, ...] = ()
    external_customer_id: str | None = None
    resource_ids: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        amount = getattr(o, "amount", None)
        if amount is not None and hasattr(o, "currency"):  # django-money's Money: its amount, as text
            return str(amount)
        return super().default(o)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=_Encoder))


def _history(source: str) -> Any:
    app_label, model_name, _ = HISTORY_SOURCES[source]
    return apps.get_model(app_label, model_name).history


def _event_model() -> Any:
    return apps.get_model("invoicing", "InvoiceEvent")


def _source_of_history(rows: QuerySet, sources: tuple[str, ...]) -> QuerySet:
    condition = Q()
    api = Q(history_change_reason__startswith=API_REASON_PREFIX)
    if "api" in sources:
        condition |= api
    if "front" in sources:
        condition |= Q(history_user__isnull=False) & ~api
    if "system" in sources:
        condition |= Q(history_user__isnull=True) & ~api
    return rows.filter(condition)


def _source_of_events(rows: QuerySet, sources: tuple[str, ...]) -> QuerySet:
    condition = Q()
    if "api" in sources:
        condition |= Q(actor__startswith="api")
    if "front" in sources:
        condition |= Q(actor__startswith="admin:")
    if "system" in sources:
        condition |= ~Q(actor__startswith="api") & ~Q(actor__startswith="admin:")
    return rows.filter(condition)


def _wanted(name: str, resource_type: str, filters: ActivityFilters, actions: tuple[str, ...]) -> tuple[bool, set]:
    """Whether a source can match the filters, and which of its actions were asked for."""
    if filters.resource_types and resource_type not in filters.resource_types:
        return False, set()
    if not filters.activity_types:
        return True, set(actions)
    chosen = {t.split(".", 1)[1] for t in filters.activity_types if t.split(".", 1)[0] == name and "." in t}
    return bool(chosen), chosen & set(actions) if actions else chosen


def activities(filters: ActivityFilters) -> QuerySet:
    """(source, row_id, at) of every matching audit row, newest first: one UNION query."""
    usernames = None
    if filters.user_emails:
        usernames = list(
            get_user_model().objects.filter(email__in=filters.user_emails).values_list("username", flat=True)
        )
    parts: list[QuerySet] = []
    for name, (_, _, resource_type) in HISTORY_SOURCES.items():
        wanted, actions = _wanted(name, resource_type, filters, tuple(HISTORY_ACTIONS.values()))
        if not wanted or (filters.external_customer_id and name != "customer"):
            continue
        rows = _history(name).all()
        if actions != set(HISTORY_ACTIONS.values()):
            rows = rows.filter(history_type__in=[k for k, v in HISTORY_ACTIONS.items() if v in actions])
        if filters.external_customer_id:
            rows = rows.filter(external_id=filters.external_customer_id)
        if filters.resource_ids:
            rows = rows.filter(id__in=[value for value in filters.resource_ids if _valid_id(rows.model, value)])
        if filters.activity_sources:
            rows = _source_of_history(rows, filters.activity_sources)
        if usernames is not None:
            rows = rows.filter(history_user__username__in=usernames)
        rows = _dated(rows, "history_date", filters)
        parts.append(_keys(rows, name, "history_id", "history_date"))
    events = _events(filters, usernames)
    if events is not None:
        parts.append(events)
    if not parts:
        return _keys(_history("customer").none(), "customer", "history_id", "history_date")
    first, *rest = parts
    union = first.union(*rest, all=True) if rest else first
    return union.order_by("-at", "-row_id")


def _keys(rows: QuerySet, source: str, id_field: str, date_field: str) -> QuerySet:
    """The columns every source answers the UNION with: (source, row_id, at)."""
    return (
        rows.order_by()
        .annotate(source=Value(source, output_field=CharField()), row_id=F(id_field), at=F(date_field))
        .values_list("source", "row_id", "at")
    )


def _events(filters: ActivityFilters, usernames: list[str] | None) -> QuerySet | None:
    wanted_invoice, _ = _wanted("invoice", "Invoice", filters, ())
    wanted_note, _ = _wanted("credit_note", "CreditNote", filters, ())
    if not (wanted_invoice or wanted_note):
        return None
    rows = _event_model().objects.all()
    if not wanted_note:
        rows = rows.filter(credit_note__isnull=True)
    if not wanted_invoice:
        rows = rows.filter(credit_note__isnull=False)
    if filters.activity_types:
        kinds = [t.split(".", 1)[1] for t in filters.activity_types if "." in t]
        notes = [k for k in kinds if f"credit_note.{k}" in filters.activity_types]
        invoices = [k for k in kinds if f"invoice.{k}" in filters.activity_types]
        rows = rows.filter(
            Q(credit_note__isnull=True, kind__in=invoices)
            | Q(credit_note__isnull=False, kind__in=[f"credit_note_{k}" for k in notes] + notes)
        )
    if filters.external_customer_id:
        rows = rows.filter(invoice__customer__external_id=filters.external_customer_id)
    if filters.resource_ids:
        ids = [value for value in filters.resource_ids if _valid_id(_event_model().invoice.field.related_model, value)]
        rows = rows.filter(Q(invoice_id__in=ids) | Q(credit_note_id__in=ids))
    if filters.activity_sources:
        rows = _source_of_events(rows, filters.activity_sources)
    if usernames is not None:
        rows = rows.filter(actor__in=[f"admin:{name}" for name in usernames])
    rows = _dated(rows, "created_at", filters)
    return _keys(rows, EVENT_SOURCE, "id", "created_at")


def _dated(rows: QuerySet, field: str, filters: ActivityFilters) -> QuerySet:
    if filters.from_date is not None:
        rows = rows.filter(**{f"{field}__gte": filters.from_date})
    if filters.to_date is not None:
        rows = rows.filter(**{f"{field}__lte": filters.to_date})
    return rows


def _valid_id(model: Any, value: str) -> bool:
    try:
        model._meta.pk.to_python(value)
    except Exception:
        return False
    return True


def parse_activity_id(activity_id: str) -> tuple[str, int] | None:
    source, _, row = activity_id.rpartition("-")
    if source not in (*HISTORY_SOURCES, EVENT_SOURCE) or not row.isdigit() or not is_path_segment(activity_id):
        return None
    return source, int(row)


def activity_rows(keys: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Lago's activity log objects for (source, row id) pairs, in their order (a page)."""
    by_source: dict[str, list[int]] = {}
    for source, row_id in keys:
        by_source.setdefault(source, []).append(row_id)
    loaded: dict[tuple[str, int], dict[str, Any]] = {}
    for source, ids in by_source.items():
        if source == EVENT_SOURCE:
            loaded.update(_event_activities(ids))
        else:
            loaded.update(_history_activities(source, ids))
    return [loaded[key] for key in keys if key in loaded]


def _who(reason: str | None, user: Any) -> tuple[str, str | None, str]:
    """(activity_source, user_email, actor)"""
    if reason and reason.startswith(API_REASON_PREFIX):
        return "api", None, reason
    if user is not None:
        return "front", user.email or None, f"admin:{user.get_username()}"
    return "system", None, "system"


def _history_activities(source: str, ids: list[int]) -> dict[tuple[str, int], dict[str, Any]]:
    _, _, resource_type = HISTORY_SOURCES[source]
    history = _history(source)
    fields = [field.attname for field in history.model.instance_type._meta.concrete_fields]
    found = {}
    for record in history.filter(history_id__in=ids).select_related("history_user"):
        changes: dict[str, Any] = {}
        previous = record.prev_record if record.history_type == "~" else None
        if previous is not None:
            delta = record.diff_against(previous)
            changes = {change.field: [change.old, change.new] for change in delta.changes}
        activity_source, email, actor = _who(record.history_change_reason, record.history_user)
        snapshot = {name: getattr(record, name) for name in fields if hasattr(record, name)}
        found[(source, record.history_id)] = {
            "activity_id": f"{source}-{record.history_id}",
            "activity_type": f"{source}.{HISTORY_ACTIONS.get(record.history_type, 'updated')}",
            "activity_source": activity_source,
            "activity_object": redact(_json_safe(snapshot)),
            "activity_object_changes": redact(_json_safe(changes)),
            "user_email": email,
            "resource_id": str(record.id),
            "resource_type": resource_type,
            "external_customer_id": getattr(record, "external_id", None) if source == "customer" else None,
            "external_subscription_id": None,
            "logged_at": _iso(record.history_date),
            "created_at": _iso(record.history_date),
            # Tollgate's: the API key ("api:<name>"), admin user ("admin:<username>") or "system".
            "actor": actor,
        }
    return found


def _event_activities(ids: list[int]) -> dict[tuple[str, int], dict[str, Any]]:
    rows = list(_event_model().objects.filter(id__in=ids).select_related("invoice__customer"))
    usernames = {row.actor.removeprefix("admin:") for row in rows if row.actor.startswith("admin:")}
    emails = dict(get_user_model().objects.filter(username__in=usernames).values_list("username", "email"))
    found = {}
    for row in rows:
        note = row.credit_note_id is not None
        kind = row.kind.removeprefix("credit_note_") if note else row.kind
        if row.actor.startswith("api"):
            activity_source, email = "api", None
        elif row.actor.startswith("admin:"):
            activity_source, email = "front", emails.get(row.actor.removeprefix("admin:")) or None
        else:
            activity_source, email = "system", None
        found[(EVENT_SOURCE, row.id)] = {
            "activity_id": f"{EVENT_SOURCE}-{row.id}",
            "activity_type": f"{'credit_note' if note else 'invoice'}.{kind}",
            "activity_source": activity_source,
            "activity_object": redact(_json_safe(row.payload or {})),
            "activity_object_changes": {},
            "user_email": email,
            "resource_id": str(row.credit_note_id if note else row.invoice_id),
            "resource_type": "CreditNote" if note else "Invoice",
            "external_customer_id": row.invoice.customer.external_id,
            "external_subscription_id": None,
            "logged_at": _iso(row.created_at),
            "created_at": _iso(row.created_at),
            "actor": row.actor,
        }
    return found


def _iso(moment: datetime) -> str:
    from datetime import UTC

    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
