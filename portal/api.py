"""Lago's GET /customers/{external_id}/portal_url: {"customer": {"portal_url": ...}}."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound
from customers.models import Customer

from .services import portal_url_build


class CustomerPortalUrlView(APIView):
    resource_name = "customer"

    @extend_schema(
        operation_id="generateCustomerPortalUrl",
        description=(
            "A signed link to the customer's portal page (invoices, credit notes, usage, wallets, "
            "billing details, Pay now), valid TOLLGATE_PORTAL_LINK_MAX_AGE seconds."
        ),
        responses={200: OpenApiResponse(response=OpenApiTypes.OBJECT)},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.live.filter(external_id=external_id).first()
        if customer is None:
            raise NotFound("customer")
        url = portal_url_build(customer=customer, base_url=request.build_absolute_uri("/"))
        return Response({"customer": {"portal_url": url}})


urlpatterns = [
    path("customers/<str:external_id>/portal_url", CustomerPortalUrlView.as_view(), name="customer-portal-url"),
]
