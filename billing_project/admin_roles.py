"""The console's roles (auth groups) in the admin: a permission picker without third-party models."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Permission
from django.db.models import ManyToManyField
from django.forms import ModelMultipleChoiceField
from django.http import HttpRequest

from billing_project.admin_site import BILLING_APPS, OWN_APPS


class RoleAdmin(GroupAdmin):
    """Groups are the console's roles: their permission picker offers the billing apps' and
    Django's own users and groups, never the third-party models' (dj-stripe, celery-beat...)."""

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest | None = None, **kwargs: Any
    ) -> ModelMultipleChoiceField[Any] | None:
        if db_field.name == "permissions":
            kwargs["queryset"] = Permission.objects.filter(
                content_type__app_label__in=BILLING_APPS + OWN_APPS
            ).select_related("content_type")
        return super().formfield_for_manytomany(db_field, request, **kwargs)
