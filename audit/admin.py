"""API logs in the admin: read-only (they are what happened)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from .models import ApiLog


@admin.register(ApiLog)
class ApiLogAdmin(admin.ModelAdmin):
    list_display = ("logged_at", "http_method", "request_path", "http_status", "api_key_name", "duration_ms")
    list_filter = ("http_method", "http_status")
    search_fields = ("request_path", "api_key_name", "request_id")
    date_hierarchy = "logged_at"

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
