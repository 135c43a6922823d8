"""Admin pieces every app uses the same way: the live/deleted filter of soft-deleted rows, the
read-only admin of records written by services only, and service error codes shown on a form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


class LiveFilter(admin.SimpleListFilter):
    """Live or soft-deleted rows (`deleted_at` set)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("deleted", "Deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "live":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by services only: listed and viewed here, never added, edited or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def add_error_codes(form: forms.BaseForm, errors: Mapping[str, list[str]], messages: Mapping[str, str]) -> None:
    """A service's {field: [code]} on the form: next to the field when the form has it, else at
    the top; each code in words when `messages` knows it."""
    for field, codes in errors.items():
        target = field if field in form.fields else None
        for code in codes:
            form.add_error(target, messages.get(code, code))
