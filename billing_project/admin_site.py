"""The finance console's admin site: the dashboard as its index, and the third-party sections
(dj-stripe, celery-beat, sequences) under one "System" heading below the billing apps."""

# billing_project imports no app (ARCHITECTURE): the dashboard's figures come from the callable
# named by settings.TOLLGATE_DASHBOARD (payments.admin_views.dashboard_context, the rightmost app,
# which may read every app), and the extra console pages from TOLLGATE_CONSOLE_URLS.

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, include, path
from django.utils.module_loading import import_string

# The billing apps, left to right as data flows (ARCHITECTURE: the one-way street).
BILLING_APPS = ["customers", "metrics", "plans", "invoicing", "payments", "webhooks"]
# Django's own: users and groups, shown between the billing apps and System.
OWN_APPS = ["auth"]


class TollgateAdminSite(admin.AdminSite):
    site_header = "Tollgate finance console"
    site_title = "Tollgate"
    index_title = "Dashboard"
    index_template = "admin/tollgate/index.html"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        if app_label is not None:
            return super().get_app_list(request, app_label)
        # Asked twice per page (the index and each_context's sidebar): built once per request.
        cached: list[dict[str, Any]] | None = getattr(request, "_tollgate_app_list", None)
        if cached is None:
            cached = self._grouped_app_list(request)
            request._tollgate_app_list = cached  # type: ignore[attr-defined]
        return cached

    def _grouped_app_list(self, request: HttpRequest) -> list[dict[str, Any]]:
        apps = super().get_app_list(request)
        order = {label: index for index, label in enumerate(BILLING_APPS + OWN_APPS)}
        billing = sorted((app for app in apps if app["app_label"] in order), key=lambda app: order[app["app_label"]])
        others = [app for app in apps if app["app_label"] not in order]
        if not others:
            return billing
        system_models = [
            {**model, "name": f"{app['name']}: {model['name']}"} for app in others for model in app["models"]
        ]
        system = {
            "name": "System",
            "app_label": "system",
            "app_url": others[0]["app_url"],
            "has_module_perms": True,
            "models": system_models,
        }
        return [*billing, system]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        context = dict(extra_context or {})
        dashboard = getattr(settings, "TOLLGATE_DASHBOARD", "")
        if dashboard:
            context["dashboard"] = import_string(dashboard)(request)
        return super().index(request, context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        console = getattr(settings, "TOLLGATE_CONSOLE_URLS", "")
        extra: list[URLResolver | URLPattern] = [path("console/", include(console))] if console else []
        return extra + super().get_urls()


class TollgateAdminConfig(AdminConfig):
    default_site = "billing_project.admin_site.TollgateAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin.py
        from django.contrib.auth.models import Group

        from billing_project.admin_roles import RoleAdmin

        if admin.site.is_registered(Group):
            admin.site.unregister(Group)
        admin.site.register(Group, RoleAdmin)
