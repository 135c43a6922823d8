"""Lago's webhook_endpoint object (lago-python-client's WebhookEndpointResponse)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from customers.api.serializers import iso_seconds
from customers.models import Organization

from ..models import WebhookEndpoint


def serialize_webhook_endpoint(endpoint: WebhookEndpoint, organization: Organization) -> dict[str, Any]:
    """Never the signing secret: only the create and rotate answers carry it, once."""
    return {
        "lago_id": str(endpoint.lago_id),
        "lago_organization_id": str(organization.lago_id),
        "webhook_url": endpoint.webhook_url,
        "signature_algo": endpoint.signature_algo,
        "name": endpoint.name or None,
        "event_types": endpoint.event_types,
        "created_at": iso_seconds(endpoint.created_at),
    }


class WebhookEndpointInput(serializers.Serializer):
    webhook_url = serializers.CharField()
    signature_algo = serializers.ChoiceField(choices=["jwt", "hmac"], required=False)
    name = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    event_types = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)


class WebhookEndpointDoc(serializers.Serializer):
    lago_id = serializers.UUIDField()
    lago_organization_id = serializers.UUIDField()
    webhook_url = serializers.CharField()
    signature_algo = serializers.CharField()
    name = serializers.CharField(allow_null=True)
    event_types = serializers.ListField(child=serializers.CharField(), allow_null=True)
    created_at = serializers.DateTimeField()
    signing_secret = serializers.CharField(required=False, help_text="Create and rotate_secret answers only")
