"""Webhooks in the admin: endpoints (recent deliveries, success rate, secret rotation) and the
delivery outbox (filter by status, type, endpoint; body and attempts inline; resend).

Thin: endpoint changes and actions call the same services as the API, report per object and write
a LogEntry.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from billing_project.admin import ReadOnlyAdmin

from . import services
from .models import DeliveryStatus, SignatureAlgo, WebhookAttempt, WebhookDelivery, WebhookEndpoint

RECENT = timedelta(days=7)
RECENT_SHOWN = 10


class WebhookEndpointForm(forms.ModelForm):
    webhook_url = forms.URLField(max_length=1024, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["webhook_url", "signature_algo", "name", "event_types"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            services.webhook_url_check(data.get("webhook_url"))
            services.event_types_check(data.get("event_types"))
        except services.WebhookError as error:
            self.add_error(error.field if error.field in self.fields else None, error.code)
        return data


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["webhook_url", "name", "signature_algo", "recent_deliveries", "success_rate", "created_at"]
    readonly_fields = ["lago_id", "previous_secret_expires_at", "recent", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        since = timezone.now() - RECENT
        recent = Q(deliveries__created_at__gte=since)
        return (
            super()
            .get_queryset(request)
            .annotate(
                recent_total=Count("deliveries", filter=recent & ~Q(deliveries__status=DeliveryStatus.PENDING)),
                recent_ok=Count("deliveries", filter=recent & Q(deliveries__status=DeliveryStatus.SUCCEEDED)),
                recent_count=Count("deliveries", filter=recent),
            )
        )

    @admin.display(description="deliveries (7 days)")
    def recent_deliveries(self, endpoint: Any) -> int:
        return endpoint.recent_count

    @admin.display(description="success rate (7 days)")
    def success_rate(self, endpoint: Any) -> str:
        if not endpoint.recent_total:
            return "-"
        return f"{100 * endpoint.recent_ok / endpoint.recent_total:.1f}%"

    @admin.display(description="recent deliveries")
    def recent(self, endpoint: WebhookEndpoint) -> str:
        rows = endpoint.deliveries.order_by("-id")[:RECENT_SHOWN]
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> {} ({} attempts) {}</li>',
                (
                    (
                        reverse("admin:webhooks_webhookdelivery_change", args=[row.pk]),
                        row.webhook_type,
                        row.status,
                        row.attempts_count,
                        row.created_at,
                    )
                    for row in rows
                ),
            ),
        )

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            services.webhook_endpoint_update(
                endpoint=obj,
                webhook_url=data["webhook_url"],
                signature_algo=data["signature_algo"] or SignatureAlgo.JWT,
                name=data.get("name"),
                event_types=data.get("event_types"),
            )
            return
        created = services.webhook_endpoint_create(
            webhook_url=data["webhook_url"],
            signature_algo=data["signature_algo"],
            name=data.get("name"),
            event_types=data.get("event_types"),
        )
        obj.pk = created.endpoint.pk
        obj._state.adding = False
        messages.warning(request, f"Signing secret (shown once, copy it now): {created.signing_secret}")

    @admin.action(description="Rotate the signing secret (the old one signs 24 h more)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            secret = services.webhook_endpoint_rotate_secret(endpoint=endpoint)
            self.log_change(request, endpoint, "Signing secret rotated")
            messages.warning(request, f"{endpoint.webhook_url}: new signing secret (shown once): {secret}")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "status_code", "succeeded", "error", "response_excerpt")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "webhook_type", "endpoint", "status", "attempts_count", "next_attempt_at", "created_at"]
    list_filter = ["status", "webhook_type", "endpoint"]
    search_fields = ["=unique_key", "=object_id"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    fields = (
        "unique_key",
        "endpoint",
        "webhook_type",
        "object_type",
        "object_id",
        "status",
        "attempts_count",
        "next_attempt_at",
        "last_attempt_at",
        "delivered_at",
        "created_at",
        "payload",
    )
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    @admin.display(description="payload")
    def payload(self, delivery: WebhookDelivery) -> str:
        try:
            pretty = json.dumps(json.loads(delivery.body), indent=2)
        except ValueError:
            pretty = delivery.body
        return format_html("<pre>{}</pre>", pretty)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewable (for the inline attempts) but nothing is editable: every field is read-only.
        return request.user.has_perm("webhooks.view_webhookdelivery")

    @admin.action(description="Resend (same body and unique key)", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset:
            services.delivery_resend(delivery=delivery)
            self.log_change(request, delivery, "Resent")
        messages.success(request, f"{queryset.count()} deliveries queued again.")

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_webhookdelivery") or request.user.is_superuser
