"""Organization and customers API in Lago's paths and shapes. Thin: type-check the request with
Lago's codes, call the services, answer the envelope."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.identifiers import is_path_segment
from billing_project.api.views import paginated, unwrap
from customers import selectors, services
from customers.models import CUSTOMER_BILLING_FIELDS, Customer, Organization

from .serializers import (
    CustomerDoc,
    CustomerInputDoc,
    OrganizationDoc,
    OrganizationInputDoc,
    serialize_customer,
    serialize_organization,
)

_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


class _Params:
    """Collects typed fields from a request object, and Lago's codes for those of the wrong type."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.values: dict[str, Any] = {}
        self.errors: dict[str, list[str]] = {}

    def text(self, field: str, source: dict[str, Any] | None = None, *, numbers: bool = False) -> None:
        source = self.data if source is None else source
        if field not in source:
            return
        value = source[field]
        if numbers and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # zipcodes, phone numbers and ids sent as JSON numbers
        if value is None or isinstance(value, str):
            self.values[field] = value.strip() if isinstance(value, str) else None
        else:
            self.errors[field] = ["value_is_invalid"]

    def days(self, field: str, source: dict[str, Any] | None = None, *, nullable: bool = True) -> None:
        source = self.data if source is None else source
        if field not in source:
            return
        value = source[field]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if (value is None and nullable) or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            self.values[field] = value
        else:
            self.errors[field] = ["value_is_invalid"]

    def section(self, field: str) -> dict[str, Any]:
        value = self.data.get(field)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.errors[field] = ["value_is_invalid"]
            return {}
        return value

    def raise_errors(self) -> None:
        if self.errors:
            raise Unprocessable(self.errors)


# --- organization ---------------------------------------------------------------------------

# invoice_footer is read on its own below: Lago sends it inside billing_configuration.
_ORGANIZATION_TEXT = tuple(field for field in services.ORGANIZATION_TEXT_FIELDS if field != "invoice_footer")


def _organization_changes(data: dict[str, Any]) -> dict[str, Any]:
    params = _Params(data)
    for field in _ORGANIZATION_TEXT:
        params.text(field, numbers=field == "zipcode")
    params.days("net_payment_term", nullable=False)
    billing = params.section("billing_configuration")
    # Lago reads these two from billing_configuration; older clients send them at the top level.
    for source in (data, billing):
        params.text("invoice_footer", source)
        params.days("invoice_grace_period", source, nullable=False)
    if "email_settings" in data:
        value = data["email_settings"]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            params.values["email_settings"] = list(dict.fromkeys(value))
        else:
            params.errors["email_settings"] = ["value_is_invalid"]
    if "document_locale" in billing:
        if isinstance(billing["document_locale"], str):
            params.values["document_locale"] = billing["document_locale"]
        else:
            params.errors["document_locale"] = ["invalid_value"]
    if isinstance(data.get("webhook_urls"), list) and "webhook_url" not in data:
        urls = data["webhook_urls"]
        params.values["webhook_url"] = urls[0] if urls and isinstance(urls[0], str) else None
    params.raise_errors()
    return params.values


class OrganizationView(APIView):
    resource_name = "organization"

    @extend_schema(
        operation_id="findOrganization",
        responses={200: inline_serializer("OrganizationFindResponse", fields={"organization": OrganizationDoc()})},
        description="The issuing organization, with the hmac_key that signs `hmac` webhooks.",
    )
    def get(self, request: Request) -> Response:
        return Response({"organization": serialize_organization(Organization.current())})

    @extend_schema(
        operation_id="updateOrganization",
        request=inline_serializer("OrganizationRequest", fields={"organization": OrganizationInputDoc()}),
        responses={
            200: inline_serializer("OrganizationResponse", fields={"organization": OrganizationDoc()}),
            400: _ERROR,
            422: _ERROR,
        },
        description="Updates the issuing organization's details: only the fields sent change; an explicit "
        "null clears a text field.",
    )
    def put(self, request: Request) -> Response:
        changes = _organization_changes(unwrap(request, "organization"))
        organization = services.organization_update(changes=changes)
        return Response({"organization": serialize_organization(organization)})


# --- customers ------------------------------------------------------------------------------


def _customer_request(data: dict[str, Any]) -> tuple[str, dict[str, Any], bool | None, list[str] | None]:
    """(external_id, changes, sync_with_provider, tax_codes) from Lago's customer object."""
    params = _Params(data)
    external_id = data.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if external_id is None or (isinstance(external_id, str) and not external_id.strip()):
        params.errors["external_id"] = ["value_is_mandatory"]
    elif not isinstance(external_id, str) or not is_path_segment(external_id):
        params.errors["external_id"] = ["value_is_invalid"]
    for field in CUSTOMER_BILLING_FIELDS:
        params.text(field, numbers=field in ("zipcode", "phone", "legal_number", "tax_identification_number"))
    params.days("net_payment_term")
    billing = params.section("billing_configuration")
    params.days("invoice_grace_period", billing)
    params.text("payment_provider", billing)
    params.text("provider_customer_id", billing)
    sync_with_provider = billing.get("sync_with_provider")
    if sync_with_provider is not None and not isinstance(sync_with_provider, bool):
        params.errors["sync_with_provider"] = ["value_is_invalid"]
    if "exclude_from_dunning_campaign" in data:
        if isinstance(data["exclude_from_dunning_campaign"], bool):
            params.values["exclude_from_dunning_campaign"] = data["exclude_from_dunning_campaign"]
        else:
            params.errors["exclude_from_dunning_campaign"] = ["value_is_invalid"]
    if "metadata" in data and data["metadata"] is not None:
        params.values["metadata"] = data["metadata"]
    tax_codes = data.get("tax_codes")
    if tax_codes is not None and (not isinstance(tax_codes, list) or not all(isinstance(c, str) for c in tax_codes)):
        params.errors["tax_codes"] = ["value_is_invalid"]
    params.raise_errors()
    return str(external_id).strip(), params.values, sync_with_provider, tax_codes


def _live_customer(external_id: str) -> Customer:
    customer = selectors.customer_live_get(external_id=external_id)
    if customer is None:
        raise NotFound("customer")
    return customer


def _query_list(request: Request, name: str) -> list[str]:
    """Lago's array filters: `countries[]=FR&countries[]=DE`, also `countries=FR,DE`."""
    values = request.query_params.getlist(f"{name}[]") or request.query_params.getlist(name)
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


_CUSTOMER_RESPONSE = inline_serializer("CustomerResponse", fields={"customer": CustomerDoc()})


class CustomersView(APIView):
    resource_name = "customer"

    @extend_schema(
        operation_id="createCustomer",
        request=inline_serializer("CustomerRequest", fields={"customer": CustomerInputDoc()}),
        responses={200: _CUSTOMER_RESPONSE, 400: _ERROR, 422: _ERROR},
        description="Creates the customer, or updates the live customer with this external_id (fields "
        "absent from the request are kept; an explicit null clears). `metadata`, when sent, replaces "
        "the customer's list.",
    )
    def post(self, request: Request) -> Response:
        external_id, changes, sync_with_provider, tax_codes = _customer_request(unwrap(request, "customer"))
        result = services.customer_upsert(
            external_id=external_id, changes=changes, sync_with_provider=sync_with_provider, tax_codes=tax_codes
        )
        customer = Customer.objects.get(pk=result.customer.pk)
        return Response({"customer": serialize_customer(customer, Organization.current())})

    @extend_schema(
        operation_id="listCustomers",
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
            OpenApiParameter("search_term", str, description="in external id, names and email"),
            OpenApiParameter("countries[]", str, many=True),
            OpenApiParameter("currencies[]", str, many=True),
        ],
        responses={
            200: inline_serializer(
                "CustomersResponse", fields={"customers": CustomerDoc(many=True), "meta": serializers.DictField()}
            )
        },
        description="Live customers, newest first.",
    )
    def get(self, request: Request) -> Response:
        queryset = selectors.customers_list(
            search_term=(request.query_params.get("search_term") or "").strip() or None,
            countries=_query_list(request, "countries"),
            currencies=_query_list(request, "currencies"),
        )
        organization = Organization.current()
        return paginated(request, queryset, "customers", lambda customer: serialize_customer(customer, organization))


class CustomerView(APIView):
    resource_name = "customer"

    @extend_schema(operation_id="findCustomer", responses={200: _CUSTOMER_RESPONSE, 404: _ERROR})
    def get(self, request: Request, external_id: str) -> Response:
        return Response({"customer": serialize_customer(_live_customer(external_id), Organization.current())})

    @extend_schema(
        operation_id="destroyCustomer",
        responses={200: _CUSTOMER_RESPONSE, 404: _ERROR},
        description="Soft delete: invoices keep the customer; its external_id can be used again.",
    )
    def delete(self, request: Request, external_id: str) -> Response:
        customer = services.customer_delete(customer=_live_customer(external_id))
        return Response({"customer": serialize_customer(customer, Organization.current())})
