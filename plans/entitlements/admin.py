"""Features and entitlements in the console. Thin: a feature page (with its privileges as rows) is
saved by services.feature_save, first run in a rolled-back savepoint so the page refuses exactly
what the API refuses; deletes go through services.feature_delete. What a plan grants and what a
subscription is entitled to (its overrides and removals) show read-only on their pages.
The admin's own LogEntry rows are the audit trail, as for every other console change."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing_project.errors import DomainError
from plans.models import Plan, Subscription

from . import services
from .models import Feature, Privilege, PrivilegeValueType

_MESSAGES = {
    "value_is_mandatory": "This field is required.",
    "value_is_invalid": "This value is not valid here.",
    "value_already_exist": "A feature already uses this code.",
    "value_is_duplicated": "Two privileges use this code.",
    "invalid_format": "A select lists its options (comma-separated); the other types have none.",
    "privilege_not_found": "This privilege no longer exists.",
}


def _message(error: DomainError) -> list[str]:
    if not error.details:
        return [_MESSAGES.get(error.code, error.code)]
    return [f"{field}: {_MESSAGES.get(code, code)}" for field, codes in error.details.items() for code in codes]


class _DryRun(Exception):
    pass


class FeatureForm(forms.ModelForm):
    class Meta:
        model = Feature
        fields = ["code", "name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.validate_constraints = lambda *args, **kwargs: None  # the service decides

    def validate_unique(self) -> None:
        """The service decides (a unique constraint, answered in Lago's words)."""


class PrivilegeForm(forms.ModelForm):
    select_options = forms.CharField(
        required=False, help_text="For a select: its options, comma-separated (options are never removed)."
    )

    class Meta:
        model = Privilege
        fields = ["code", "name", "value_type"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.validate_constraints = lambda *args, **kwargs: None  # the service decides
        if not self.instance._state.adding:
            # A privilege keeps its code and type for good (Lago's FeatureUpdateService).
            for name in ("code", "value_type"):
                self.fields[name].disabled = True
            self.fields["select_options"].initial = ", ".join(self.instance.config.get("select_options", []))

    def validate_unique(self) -> None:
        """The service decides."""

    def spec(self) -> dict[str, Any]:
        data = self.cleaned_data
        options = [o.strip() for o in (data.get("select_options") or "").split(",") if o.strip()]
        value_type = data.get("value_type") or PrivilegeValueType.STRING
        config = {"select_options": options} if options or value_type == PrivilegeValueType.SELECT else {}
        return {"code": data.get("code"), "name": data.get("name") or "", "value_type": value_type, "config": config}


class PrivilegeFormSet(BaseInlineFormSet):
    """Collects the rows as the service's privilege specs, and dry-runs the whole save."""

    def _deleting(self, form: forms.BaseForm) -> bool:
        return bool(self.can_delete and getattr(form, "cleaned_data", {}).get("DELETE"))

    def kept(self) -> list[Any]:
        """The rows that stay: the saved ones not ticked for deletion, and the new rows filled in."""
        return [
            form
            for form in self.forms
            if not self._deleting(form) and (not form.instance._state.adding or form.has_changed())
        ]

    def specs(self) -> list[dict[str, Any]]:
        return [form.spec() for form in self.kept() if form.cleaned_data]

    def removed_codes(self) -> list[str]:
        return [f.instance.code for f in self.forms if not f.instance._state.adding and self._deleting(f)]

    def save_through_service(self, instance: Feature) -> Feature:
        current = Feature.objects.filter(pk=instance.pk).first() if instance.pk else None
        return services.feature_save(
            feature=current,
            code=instance.code,
            name=instance.name,
            description=instance.description,
            privileges=self.specs(),
            removed_privilege_codes=self.removed_codes(),
        )

    def validate_unique(self) -> None:
        """Two rows with one code are the service's to refuse (value_is_duplicated)."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        try:
            with transaction.atomic():
                self.save_through_service(self.instance)
                raise _DryRun
        except _DryRun:
            return
        except DomainError as error:
            raise ValidationError(_message(error)) from None


class PrivilegeInline(admin.TabularInline):
    model = Privilege
    form = PrivilegeForm
    formset = PrivilegeFormSet
    extra = 1
    fields = ["code", "name", "value_type", "select_options"]


def _plans_granting(feature: Feature) -> SafeString:
    plans = Plan.objects.filter(entitlements__feature=feature).order_by("code")
    return format_html_join(", ", "{}", ((plan.code,) for plan in plans)) or format_html("<em>{}</em>", "none")


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    form = FeatureForm
    inlines = [PrivilegeInline]
    list_display = ["code", "name", "privilege_codes", "created_at"]
    search_fields = ["code", "name", "description"]
    readonly_fields = ["granted_by", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("privileges")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "code"] if obj is not None else fields  # the API names it by code for good

    @admin.display(description="Privileges")
    def privilege_codes(self, obj: Feature) -> str:
        return ", ".join(f"{p.code} ({p.value_type})" for p in obj.privileges.all()) or "-"

    @admin.display(description="Granted by plans")
    def granted_by(self, obj: Feature) -> SafeString:
        return _plans_granting(obj) if obj.pk else format_html("<em>{}</em>", "none")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Saved with its privileges by save_related (one service call)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        rows = next(f for f in formsets if isinstance(f, PrivilegeFormSet))
        before = {p.code: p for p in Privilege.objects.filter(feature_id=form.instance.pk)} if change else {}
        changed = [
            (f.instance, f.changed_data) for f in rows.kept() if not f.instance._state.adding and f.has_changed()
        ]
        removed = [before[code] for code in rows.removed_codes() if code in before]
        feature = rows.save_through_service(form.instance)
        form.instance.pk = feature.pk
        form.instance._state.adding = False
        # What the admin's change message (the LogEntry) reads: the service did the saving.
        rows.new_objects = list(feature.privileges.exclude(code__in=list(before)))
        rows.changed_objects, rows.deleted_objects = changed, removed

    def delete_model(self, request: HttpRequest, obj: Feature) -> None:
        services.feature_delete(feature=obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletes go through the service, one by one
        return actions


# --------------------------------------------------------------------------------------------
# Read-only panels for the plan and subscription pages (plans.admin shows them)


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def plan_entitlements_panel(plan: Plan | None) -> SafeString:
    """What the plan grants (an override shows its parent's grants: Lago's plans.parent_id)."""
    if plan is None or plan.pk is None:
        return format_html("<em>{}</em>", "Saved plans only.")
    granting = plan.parent or plan
    rows = [services.serialize_plan_entitlement(e) for e in services.plan_entitlements(plan=granting)]
    if not rows:
        return format_html("<em>{}</em>", "No features granted.")
    body = format_html_join(
        "",
        '<tr class="entitlement-row"><td>{}</td><td>{}</td></tr>',
        (
            (
                grant["code"],
                ", ".join(f"{p['code']} = {_value(p['value'])}" for p in grant["privileges"]) or "on",
            )
            for grant in rows
        ),
    )
    return format_html(
        '<table class="entitlements"><thead><tr><th>Feature</th><th>Privileges</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        body,
    )


def subscription_entitlements_panel(subscription: Subscription | None) -> SafeString:
    """What the subscription may use: per privilege the value, the plan's and its own override."""
    if subscription is None or subscription.pk is None:
        return format_html("<em>{}</em>", "Saved subscriptions only.")
    features = services.subscription_entitlements(subscription=subscription)
    if not features:
        return format_html("<em>{}</em>", "No features.")
    rows = []
    for feature in features:
        if not feature["privileges"]:
            rows.append((feature["code"], "-", "on", "-", "-"))
        for p in feature["privileges"]:
            own = _value(p["override_value"]) if p["code"] in feature["overrides"] else "-"
            rows.append((feature["code"], p["code"], _value(p["value"]), _value(p["plan_value"]), own))
    body = format_html_join(
        "", '<tr class="entitlement-row"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', rows
    )
    return format_html(
        '<table class="entitlements"><thead><tr><th>Feature</th><th>Privilege</th><th>Value</th>'
        "<th>Plan's</th><th>Overridden</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )
