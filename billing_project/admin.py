"""Admin pieces every app uses the same way: the live/deleted filter of soft-deleted rows, the
read-only admin of records written by services only, service error codes shown on a form, and
amounts shown as money ("USD 1,123.45") in lists, pages and form inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from djmoney.money import Money

from billing_project.money import format_money, is_currency, round_amount


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


def money_display(
    field: str,
    *,
    currency: str | Callable[[Any], str] = "currency",
    description: str | None = None,
    sortable: bool = True,
) -> Callable[[Any, Any], str]:
    """A ModelAdmin method showing `field` as money ("USD 1,123.45"), for list_display and
    readonly_fields: `amount_money = money_display("amount")`. A MoneyField carries its own
    currency; a plain amount reads it from the `currency` attribute (or callable). A property
    is not `sortable`."""

    @admin.display(description=description or field.replace("_", " "), ordering=field if sortable else None)
    def show(model_admin: Any, obj: Any) -> str:
        value = getattr(obj, field)
        if value is None:
            return "-"
        if isinstance(value, Money):
            return format_money(value.amount, str(value.currency))
        code = currency(obj) if callable(currency) else getattr(obj, currency)
        return format_money(value, code)

    return show


def percent_display(field: str, *, description: str | None = None) -> Callable[[Any, Any], str]:
    """A ModelAdmin method showing a rate in percent as finance reads it ("20%", "2.5%"),
    not the column's "20.0000"."""

    @admin.display(description=description or field.replace("_", " "), ordering=field)
    def show(model_admin: Any, obj: Any) -> str:
        value = getattr(obj, field)
        if value is None:
            return "-"
        text = f"{Decimal(value).normalize():f}"
        return f"{text}%"

    return show


def money_initial(form: forms.BaseForm, currencies: Mapping[str, str | None] | None = None) -> None:
    """A form's amounts as the currency writes them ("29.40", not the column's "29.400000"):
    MoneyField initials by their own currency, plain amounts named in `currencies` by theirs."""
    for name, value in list(form.initial.items()):
        if isinstance(value, Money) and is_currency(str(value.currency)):
            form.initial[name] = Money(round_amount(value.amount, str(value.currency)), value.currency)
        elif currencies and name in currencies and isinstance(value, Decimal):
            code = currencies[name]
            if code and is_currency(code):
                form.initial[name] = round_amount(value, code)
