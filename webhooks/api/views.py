"""Webhook endpoints and the JWT public key, in Lago's paths and shapes. Thin: check the request's
form, call services, answer the one serialization."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing_project.api.errors import NotFound, Unprocessable
from billing_project.api.views import paginated, unwrap
from customers.models import Organization

from .. import keys, services
from ..models import WebhookEndpoint
from .serializers import WebhookEndpointDoc, WebhookEndpointInput, serialize_webhook_endpoint

_ANSWER = inline_serializer("WebhookEndpointResponse", fields={"webhook_endpoint": WebhookEndpointDoc()})
_REQUEST = inline_serializer("WebhookEndpointRequest", fields={"webhook_endpoint": WebhookEndpointInput()})


def _endpoint(lago_id: str) -> WebhookEndpoint:
    try:
        parsed = uuid.UUID(str(lago_id))
    except ValueError:
        raise NotFound("webhook_endpoint")
    endpoint = WebhookEndpoint.objects.filter(pk=parsed).first()
    if endpoint is None:
        raise NotFound("webhook_endpoint")
    return endpoint


def _refused(error: services.WebhookError) -> Unprocessable:
    return Unprocessable({error.field or "base": [error.code]})


def _answer(endpoint: WebhookEndpoint, **extra: Any) -> Response:
    return Response({"webhook_endpoint": {**serialize_webhook_endpoint(endpoint, Organization.current()), **extra}})


def _input(request: Request, *, partial: bool) -> dict[str, Any]:
    data = unwrap(request, "webhook_endpoint")
    checked = WebhookEndpointInput(data=data, partial=partial)
    checked.is_valid(raise_exception=True)
    # Only the keys the caller sent: an absent key leaves the field as it is on update.
    return {key: data[key] for key in ("webhook_url", "signature_algo", "name", "event_types") if key in data}


class WebhookEndpointsView(APIView):
    resource_name = "webhook_endpoint"

    @extend_schema(
        operation_id="findAllWebhookEndpoints",
        responses={
            200: inline_serializer(
                "WebhookEndpointsResponse",
                fields={"webhook_endpoints": WebhookEndpointDoc(many=True), "meta": serializers.DictField()},
            )
        },
    )
    def get(self, request: Request) -> Response:
        organization = Organization.current()
        return paginated(
            request,
            WebhookEndpoint.objects.order_by("created_at", "lago_id"),
            "webhook_endpoints",
            lambda endpoint: serialize_webhook_endpoint(endpoint, organization),
        )

    @extend_schema(
        operation_id="createWebhookEndpoint",
        request=_REQUEST,
        responses={200: _ANSWER},
        description="At most 10 endpoints. The answer carries `signing_secret` (Tollgate-Signature) once.",
    )
    def post(self, request: Request) -> Response:
        try:
            created = services.webhook_endpoint_create(**_input(request, partial=False))
        except services.WebhookError as error:
            raise _refused(error)
        return _answer(created.endpoint, signing_secret=created.signing_secret)


class WebhookEndpointView(APIView):
    resource_name = "webhook_endpoint"

    @extend_schema(operation_id="findWebhookEndpoint", responses={200: _ANSWER})
    def get(self, request: Request, lago_id: str) -> Response:
        return _answer(_endpoint(lago_id))

    @extend_schema(operation_id="updateWebhookEndpoint", request=_REQUEST, responses={200: _ANSWER})
    def put(self, request: Request, lago_id: str) -> Response:
        endpoint = _endpoint(lago_id)
        try:
            endpoint = services.webhook_endpoint_update(endpoint=endpoint, **_input(request, partial=True))
        except services.WebhookError as error:
            raise _refused(error)
        return _answer(endpoint)

    @extend_schema(operation_id="destroyWebhookEndpoint", responses={200: _ANSWER})
    def delete(self, request: Request, lago_id: str) -> Response:
        endpoint = _endpoint(lago_id)
        answer = _answer(endpoint)
        services.webhook_endpoint_delete(endpoint=endpoint)
        return answer


class WebhookEndpointRotateSecretView(APIView):
    resource_name = "webhook_endpoint"

    @extend_schema(
        operation_id="rotateWebhookEndpointSecret",
        request=None,
        responses={200: _ANSWER},
        description="A new signing_secret, shown once; the previous one keeps signing for 24 hours.",
    )
    def post(self, request: Request, lago_id: str) -> Response:
        endpoint = _endpoint(lago_id)
        secret = services.webhook_endpoint_rotate_secret(endpoint=endpoint)
        endpoint.refresh_from_db()
        return _answer(endpoint, signing_secret=secret)


class JsonPublicKeyView(APIView):
    resource_name = "webhook"

    @extend_schema(
        operation_id="fetchPublicKey",
        responses={
            200: inline_serializer(
                "WebhookPublicKey",
                fields={
                    "webhook": inline_serializer(
                        "WebhookPublicKeyObject", fields={"public_key": serializers.CharField()}
                    )
                },
            )
        },
        description="Base64 of the PEM of the RSA public key that verifies X-Lago-Signature (jwt).",
    )
    def get(self, request: Request) -> Response:
        public_key = base64.b64encode(keys.public_key_pem().encode()).decode()
        return Response({"webhook": {"public_key": public_key}})
