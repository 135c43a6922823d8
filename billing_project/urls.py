"""URL routing: the admin, the public API under /api/v1/, its schema and docs, and /health."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing_project.api.errors import api_not_found


def health(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


api_v1: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("customers.api.urls")),
    path("", include("metrics.api.urls")),
    path("", include("plans.api.urls")),
    path("", include("invoicing.api.urls")),
    path("", include("payments.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("portal.api")),
    re_path(r"^.*$", api_not_found),
]

# The admin's "View site" link: the API documentation (there is no other public site to show).
admin.site.site_url = "/api/v1/docs/"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    # Stripe webhooks (signature-verified by dj-stripe): /stripe/webhook/<uuid>/
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("api/v1/", include(api_v1)),
    # The customer portal (a signed, expiring link per customer; no admin, no API key).
    path("portal/", include("portal.urls")),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
