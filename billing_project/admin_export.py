"""CSV export of any filtered admin list: the same filters, search and ordering as the page,
every matching row (not only the page's), read in chunks. Amounts are plain numbers rounded to
their currency's minor unit, so a spreadsheet sums them."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from billing_project.money import decimal_places, is_currency

EXPORT_PARAMETER = "_export"


class CsvExportMixin(admin.ModelAdmin):
    # Field paths (`customer__external_id`); the ones in csv_money_fields are rounded by `currency`.
    csv_fields: list[str] = []
    csv_money_fields: list[str] = []

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.GET.get(EXPORT_PARAMETER) == "csv" and self.csv_fields:
            if not self.has_view_or_change_permission(request):
                raise PermissionDenied
            query = request.GET.copy()
            del query[EXPORT_PARAMETER]
            # The changelist reads its filters from request.GET: the same ones, without ours.
            request.GET = query  # type: ignore[assignment]
            changelist = self.get_changelist_instance(request)
            return self.csv_response(changelist.get_queryset(request))
        query = request.GET.copy()
        query[EXPORT_PARAMETER] = "csv"
        context = {**(extra_context or {})}
        if self.csv_fields:
            context["csv_export_url"] = f"?{query.urlencode()}"
        return super().changelist_view(request, context)

    def csv_response(self, queryset: QuerySet[Any]) -> HttpResponse:
        fields = self.csv_fields
        money = set(self.csv_money_fields)
        currency_index = fields.index("currency") if "currency" in fields else None

        def cell(value: Any, field: str, row: tuple[Any, ...]) -> Any:
            if field in money and value is not None and currency_index is not None:
                currency = row[currency_index]
                if is_currency(currency):
                    return f"{value:.{decimal_places(currency)}f}"
            if hasattr(value, "isoformat"):
                return value.isoformat()
            return "" if value is None else value

        name = self.model._meta.model_name
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{name}s-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        writer = csv.writer(response)
        writer.writerow(fields)
        for row in queryset.values_list(*fields).iterator(chunk_size=2000):
            writer.writerow([cell(value, field, row) for value, field in zip(row, fields, strict=True)])
        return response
