"""The portal in the console: each customer's link generation, and revoking every link issued."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import PortalAccess
from .services import portal_access_revoke


@admin.register(PortalAccess)
class PortalAccessAdmin(admin.ModelAdmin):
    list_display = ("customer", "version", "revoked_at", "updated_at")
    search_fields = ("customer__external_id", "customer__name")
    readonly_fields = ("customer", "version", "revoked_at", "created_at", "updated_at")
    actions = ["revoke_links"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke every portal link issued so far", permissions=["change"])
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for access in queryset.select_related("customer"):
            portal_access_revoke(customer=access.customer)
            self.log_change(request, access, "Portal links revoked")
        self.message_user(request, f"{queryset.count()} customer(s): portal links revoked.", messages.SUCCESS)
