"""webhooks API routes: endpoints (Lago's), their secret rotation (Tollgate's) and the public key."""

from django.urls import path

from . import views

urlpatterns = [
    path("webhook_endpoints", views.WebhookEndpointsView.as_view(), name="webhook-endpoints"),
    path("webhook_endpoints/<str:lago_id>", views.WebhookEndpointView.as_view(), name="webhook-endpoint"),
    path(
        "webhook_endpoints/<str:lago_id>/rotate_secret",
        views.WebhookEndpointRotateSecretView.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path("webhooks/json_public_key", views.JsonPublicKeyView.as_view(), name="webhooks-json-public-key"),
]
