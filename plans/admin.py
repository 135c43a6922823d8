"""The catalog and subscriptions in the admin. Thin: every save calls the same service as the
API, and every form first runs that service in a rolled-back savepoint, so the admin refuses
exactly what the API refuses (charge properties through charge_models.validate_properties,
plans with subscriptions changing only prospectively, ...) and shows why next to the field.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from djmoney.money import Money

from billing_project.admin import LiveFilter, money_display, money_initial, percent_display
from billing_project.money import to_cents

from . import admin_pricing, charge_models, services
from .entitlements import admin as entitlements_admin  # registers Feature
from .errors import PlansError
from .models import AddOn, AppliedCoupon, Charge, Coupon, CustomerTax, Plan, Subscription, SubscriptionStatus, Tax
from .overrides import charge_spec

_MESSAGES = {
    "value_is_mandatory": "This field is required.",
    "value_is_invalid": "This value is not valid here.",
    "value_already_exist": "A live record already uses this code.",
    "attached_to_subscriptions": "Cannot change: the plan has live subscriptions (it would rewrite billed periods).",
    "invalid_amount": "Amounts are decimal strings, 0 or more.",
    "currencies_does_not_match": "The customer is billed in another currency.",
}


class _DryRun(Exception):
    """Rolls back a service call made only to learn whether it would succeed."""


def dry_run(call: Callable[[], Any]) -> PlansError | None:
    try:
        with transaction.atomic():
            call()
            raise _DryRun
    except _DryRun:
        return None
    except PlansError as error:
        return error


def add_service_errors(form: forms.BaseForm, error: PlansError) -> None:
    if not error.details:
        form.add_error(None, _MESSAGES.get(error.code, error.code))
        return
    for field, codes in error.details.items():
        for code in codes:
            message = _MESSAGES.get(code, code)
            if field in form.fields:
                form.add_error(field, message)
            else:
                form.add_error(None, f"{field}: {message}")


class ServiceForm(forms.ModelForm):
    """A model form whose save is a service call (`call_service`), validated by a dry run."""

    def call_service(self) -> models.Model:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if not self.errors:
            error = dry_run(self.call_service)
            if error is not None:
                add_service_errors(self, error)
        return cleaned

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Uniqueness among live rows is the service's to check, in Lago's terms; the form's
        # instance is never saved itself, so its own constraint checks would only repeat them.
        self.instance.validate_constraints = lambda *args, **kwargs: None
        money_initial(self)

    def validate_unique(self) -> None:
        """Same as validate_constraints: the service decides."""


class ServiceAdmin(admin.ModelAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: ServiceForm, change: bool) -> None:
        saved = form.call_service()
        obj.pk = saved.pk
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Relations (taxes, plans of a coupon) were saved by the service."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletes go through the service, one by one
        return actions


def _amount_arguments(amount: Money | None, *, currency_when_empty: str | None = "") -> dict[str, Any]:
    """A MoneyField's value as the services take it (integer `amount_cents`, `amount_currency`)."""
    if amount is None:
        return {"amount_cents": None, "amount_currency": currency_when_empty}
    currency = str(amount.currency)
    return {"amount_cents": to_cents(amount.amount, currency), "amount_currency": currency}


# --------------------------------------------------------------------------------------------
# Taxes


class TaxForm(ServiceForm):
    class Meta:
        model = Tax
        fields = ["code", "name", "rate", "description", "applied_to_organization"]

    def call_service(self) -> Tax:
        data: dict[str, Any] = {key: self.cleaned_data.get(key) for key in self.Meta.fields}
        if self.instance._state.adding:
            return services.tax_create(**data)
        return services.tax_update(tax=Tax.objects.get(pk=self.instance.pk), **data)


@admin.register(Tax)
class TaxAdmin(ServiceAdmin):
    form = TaxForm
    list_display = ["code", "name", "rate_percent", "applied_to_organization", "created_at"]
    rate_percent = percent_display("rate", description="rate")
    list_filter = ["applied_to_organization"]
    search_fields = ["code", "name"]

    def delete_model(self, request: HttpRequest, obj: Tax) -> None:
        services.tax_delete(tax=obj)


@admin.register(CustomerTax)
class CustomerTaxAdmin(admin.ModelAdmin):
    """Taxes applied to a customer instead of the organization's defaults."""

    list_display = ["customer", "tax"]
    list_select_related = ["customer", "tax"]
    raw_id_fields = ["customer"]
    search_fields = ["customer__external_id", "tax__code"]


# --------------------------------------------------------------------------------------------
# Plans with inline charges


def _plan_arguments(form: forms.ModelForm) -> dict[str, Any]:
    data = form.cleaned_data
    return {
        "name": data.get("name") or "",
        "code": data.get("code") or "",
        "description": data.get("description") or "",
        "interval": data.get("interval") or "",
        **_amount_arguments(data.get("amount")),
        "pay_in_advance": bool(data.get("pay_in_advance")),
        "trial_period": data.get("trial_period"),
        "bill_charges_monthly": data.get("bill_charges_monthly"),
        "invoice_display_name": data.get("invoice_display_name") or "",
        "tax_codes": [tax.code for tax in data.get("taxes") or []],
    }


class PlanForm(ServiceForm):
    class Meta:
        model = Plan
        fields = [
            "name",
            "code",
            "description",
            "interval",
            "amount",
            "pay_in_advance",
            "trial_period",
            "bill_charges_monthly",
            "invoice_display_name",
            "taxes",
        ]

    # The answer of the confirmation page (PlanAdmin.changeform_view): None applies the change to
    # live subscriptions, False keeps their terms (plan_update's cascade_updates).
    cascade_updates: bool | None = None

    def call_service(self) -> Plan:
        arguments = _plan_arguments(self)
        if self.instance._state.adding:
            return services.plan_create(**arguments)
        plan = Plan.objects.get(pk=self.instance.pk)
        return services.plan_update(plan=plan, cascade_updates=self.cascade_updates, **arguments)


class ChargeForm(forms.ModelForm):
    class Meta:
        model = Charge
        fields = [
            "code",
            "billable_metric",
            "charge_model",
            "properties",
            "pay_in_advance",
            "invoiceable",
            "prorated",
            "min_amount",
            "invoice_display_name",
            "taxes",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["code"].required = False
        self.fields["code"].help_text = "Blank: the metric's code (with _2, _3... if taken)."
        plan = getattr(self.instance, "plan", None) if self.instance.plan_id else None
        if plan is not None and plan.amount is not None:
            money_initial(self, {"min_amount": str(plan.amount.currency)})


class ChargeFormSet(BaseInlineFormSet):
    """The whole list of charges, validated by a dry run of the plan service with them."""

    def charge_specs(self) -> list[dict[str, Any]]:
        amount = self.instance.amount
        currency = str(amount.currency) if amount is not None else "USD"
        specs = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("billable_metric"):
                continue
            spec = {
                "code": data.get("code") or None,
                "billable_metric_id": str(data["billable_metric"].pk),
                "charge_model": data.get("charge_model"),
                "properties": data.get("properties"),
                "pay_in_advance": data.get("pay_in_advance"),
                "invoiceable": data.get("invoiceable"),
                "prorated": data.get("prorated"),
                "min_amount_cents": to_cents(data.get("min_amount") or Decimal(0), currency),
                "invoice_display_name": data.get("invoice_display_name") or "",
                "tax_codes": [tax.code for tax in data.get("taxes") or []],
            }
            if not form.instance._state.adding:
                spec["id"] = str(form.instance.pk)
                # Filters are edited through the API; the admin keeps them as they are.
                spec["filters"] = [
                    {"values": f.values, "properties": f.properties, "invoice_display_name": f.invoice_display_name}
                    for f in form.instance.filters.filter(deleted_at__isnull=True)
                ]
            specs.append(spec)
        return specs

    def clean(self) -> None:
        super().clean()
        if any(form.errors for form in self.forms):
            return
        plan = self.instance  # carries the plan form's (unsaved) changes
        arguments = {
            "name": plan.name,
            "code": plan.code,
            "description": plan.description,
            "interval": plan.interval,
            **_amount_arguments(plan.amount),
            "pay_in_advance": plan.pay_in_advance,
            "trial_period": plan.trial_period,
            "bill_charges_monthly": plan.bill_charges_monthly,
            "charges": self.charge_specs(),
        }
        if plan._state.adding:
            error = dry_run(lambda: services.plan_create(**arguments))
        else:
            error = dry_run(lambda: services.plan_update(plan=Plan.objects.get(pk=plan.pk), **arguments))
        if error is not None:
            details = error.details or {error.code: [error.code]}
            raise forms.ValidationError(
                [f"{field}: {_MESSAGES.get(code, code)}" for field, codes in details.items() for code in codes]
            )


class ChargeInline(admin.StackedInline):
    model = Charge
    form = ChargeForm
    formset = ChargeFormSet
    extra = 0
    fk_name = "plan"
    readonly_fields = ["pricing"]

    @admin.display(description="Pricing editor")
    def pricing(self, obj: Charge) -> str:
        if obj._state.adding:
            return "Save the plan first, then edit this charge's prices and tiers here."
        url = reverse("admin:plans_plan_charge_pricing", args=[obj.plan_id, obj.pk])
        return format_html(
            '<span class="charge-prices">{}</span> '
            '<a href="{}" class="button charge-pricing-link">Edit prices and tiers</a>',
            admin_pricing.pricing_summary(obj),
            url,
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(deleted_at__isnull=True).select_related("billable_metric")


class OverrideFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("catalogue", "Catalogue plans"), ("override", "Subscription overrides")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "catalogue":
            return queryset.filter(parent__isnull=True)
        if self.value() == "override":
            return queryset.filter(parent__isnull=False)
        return queryset


# Plan form fields that change what live subscriptions pay or how they are billed.
_TERMS_FIELDS = {"amount", "interval", "pay_in_advance", "trial_period", "bill_charges_monthly", "taxes"}


_PRICE_KEYS = ("billable_metric_id", "charge_model", "properties", "pay_in_advance", "prorated", "min_amount_cents")


def _charges_change(plan: Plan, formset: ChargeFormSet) -> bool:
    """Whether the posted charges price differently from the plan's live ones."""
    current = {
        spec["id"]: {key: spec[key] for key in _PRICE_KEYS}
        for spec in (charge_spec(c) for c in plan.charges.filter(deleted_at__isnull=True))
    }
    posted = {}
    for spec in formset.charge_specs():
        if "id" not in spec:
            return True
        metric = {"billable_metric_id": spec["billable_metric_id"]}
        values = {key: spec.get(key) for key in _PRICE_KEYS}
        values["properties"] = charge_models.clean_properties(spec["charge_model"], spec.get("properties") or {})
        values["pay_in_advance"], values["prorated"] = bool(spec.get("pay_in_advance")), bool(spec.get("prorated"))
        posted[spec["id"]] = {**values, **metric}
    return posted != current


def _cascade_choice(request: HttpRequest) -> bool | None:
    return False if request.POST.get("_cascade") == "new" else None


@admin.register(Plan)
class PlanAdmin(ServiceAdmin):
    form = PlanForm
    inlines = [ChargeInline]
    list_display = ["code", "name", "interval", "amount_money", "pay_in_advance", "parent", "created_at", "deleted_at"]
    list_filter = [LiveFilter, OverrideFilter, "interval", "pay_in_advance"]
    search_fields = ["code", "name"]
    readonly_fields = ["id", "parent", "entitlements", "created_at", "updated_at", "deleted_at"]
    actions = ["duplicate"]
    amount_money = money_display("amount")

    @admin.display(description="Entitlements (features granted)")
    def entitlements(self, obj: Plan | None) -> str:
        return entitlements_admin.plan_entitlements_panel(obj)

    def get_urls(self) -> list[URLPattern]:
        pricing = self.admin_site.admin_view(
            lambda request, object_id, charge_id: admin_pricing.charge_pricing_view(self, request, object_id, charge_id)
        )
        return [
            path("<uuid:object_id>/charges/<uuid:charge_id>/pricing/", pricing, name="plans_plan_charge_pricing"),
            *super().get_urls(),
        ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"cascade_updates": _cascade_choice(request)})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A save that live subscriptions would feel first asks whether it applies to them."""
        if request.method == "POST" and object_id and request.POST.get("_cascade") not in ("all", "new"):
            plan = self.get_object(request, object_id)
            live = admin_pricing.live_subscriptions(plan) if plan is not None else 0
            if plan is not None and live and self.has_change_permission(request, plan):
                form = self.get_form(request, plan, change=True)(request.POST, request.FILES, instance=plan)
                form_valid = form.is_valid()
                # Django's own (private, stable since 2.x) builder of the change form's inlines.
                build = self._create_formsets  # type: ignore[attr-defined]
                formsets, _ = build(request, form.instance if form_valid else plan, change=True)
                if form_valid and all(formset.is_valid() for formset in formsets):
                    charges = [f for f in formsets if isinstance(f, ChargeFormSet)]
                    terms = _TERMS_FIELDS & set(form.changed_data) or any(_charges_change(plan, f) for f in charges)
                    if terms:
                        return admin_pricing.confirm_page(request, plan, "the terms", live)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        for formset in formsets:
            if isinstance(formset, ChargeFormSet):
                services.plan_update(
                    plan=Plan.objects.get(pk=form.instance.pk),
                    charges=formset.charge_specs(),
                    cascade_updates=_cascade_choice(request),
                )
                # What the admin's change message reads (the service did the saving).
                formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request: HttpRequest, obj: Plan) -> None:
        services.plan_delete(plan=obj)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        cascade = request.POST.get("_cascade") if request.method == "POST" else None
        if cascade and isinstance(message, list):
            reach = "applies to live subscriptions" if cascade == "all" else "only new subscriptions"
            message = [*message, {"changed": {"fields": [f"terms ({reach})"]}}]
        return super().log_change(request, obj, message)

    @admin.action(description="Duplicate selected plans", permissions=["add"])
    def duplicate(self, request: HttpRequest, queryset: QuerySet) -> None:
        for plan in queryset.filter(deleted_at__isnull=True, parent__isnull=True):
            code = _free_code(f"{plan.code}_copy")
            copy = services.plan_duplicate(plan=plan, code=code, name=f"{plan.name} (copy)")
            self.log_addition(request, copy, f"Duplicated from {plan.code}.")
            self.log_change(request, plan, f"Duplicated as {copy.code}.")
            self.message_user(request, f"{plan.code} duplicated as {copy.code}.", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or obj.deleted_at is None)


def _free_code(base: str) -> str:
    code, n = base, 1
    while Plan.live.filter(code=code).exists():
        n += 1
        code = f"{base}_{n}"
    return code


# --------------------------------------------------------------------------------------------
# Add-ons and coupons


class AddOnForm(ServiceForm):
    class Meta:
        model = AddOn
        fields = ["name", "code", "description", "amount", "invoice_display_name", "taxes"]

    def call_service(self) -> AddOn:
        data = self.cleaned_data
        arguments = {
            "name": data.get("name") or "",
            "code": data.get("code") or "",
            "description": data.get("description") or "",
            "invoice_display_name": data.get("invoice_display_name") or "",
            **_amount_arguments(data.get("amount")),
            "tax_codes": [tax.code for tax in data.get("taxes") or []],
        }
        if self.instance._state.adding:
            return services.add_on_create(**arguments)
        return services.add_on_update(add_on=AddOn.objects.get(pk=self.instance.pk), **arguments)


@admin.register(AddOn)
class AddOnAdmin(ServiceAdmin):
    form = AddOnForm
    list_display = ["code", "name", "amount_money", "created_at", "deleted_at"]
    list_filter = [LiveFilter]
    search_fields = ["code", "name"]
    amount_money = money_display("amount")

    def delete_model(self, request: HttpRequest, obj: AddOn) -> None:
        services.add_on_delete(add_on=obj)


class CouponForm(ServiceForm):
    class Meta:
        model = Coupon
        fields = [
            "name",
            "code",
            "description",
            "coupon_type",
            "amount",
            "percentage_rate",
            "frequency",
            "frequency_duration",
            "expiration",
            "expiration_at",
            "reusable",
            "plans",
            "billable_metrics",
        ]

    def call_service(self) -> Coupon:
        data = self.cleaned_data
        arguments = {
            "name": data.get("name") or "",
            "code": data.get("code") or "",
            "description": data.get("description") or "",
            "coupon_type": data.get("coupon_type"),
            **_amount_arguments(data.get("amount"), currency_when_empty=None),
            "percentage_rate": data.get("percentage_rate"),
            "frequency": data.get("frequency"),
            "frequency_duration": data.get("frequency_duration"),
            "expiration": data.get("expiration"),
            "expiration_at": data.get("expiration_at"),
            "reusable": data.get("reusable"),
            "plan_codes": [plan.code for plan in data.get("plans") or []],
            "billable_metric_codes": [metric.code for metric in data.get("billable_metrics") or []],
        }
        if self.instance._state.adding:
            return services.coupon_create(**arguments)
        return services.coupon_update(coupon=Coupon.objects.get(pk=self.instance.pk), **arguments)


@admin.register(Coupon)
class CouponAdmin(ServiceAdmin):
    form = CouponForm
    list_display = ["code", "name", "coupon_type", "amount_money", "rate_percent", "frequency", "terminated_at"]
    amount_money = money_display("amount")
    rate_percent = percent_display("percentage_rate", description="percentage rate")
    list_filter = [LiveFilter, "coupon_type", "frequency", "reusable"]
    search_fields = ["code", "name"]
    filter_horizontal = ["plans", "billable_metrics"]

    def delete_model(self, request: HttpRequest, obj: Coupon) -> None:
        services.coupon_delete(coupon=obj)


class AppliedCouponForm(ServiceForm):
    class Meta:
        model = AppliedCoupon
        fields = ["customer", "coupon", "amount", "percentage_rate", "frequency", "frequency_duration"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An applied coupon is never edited: its page shows every field read-only (no form fields).
        if "frequency" in self.fields:
            self.fields["frequency"].required = False
        coupon = self.fields.get("coupon")
        if isinstance(coupon, forms.ModelChoiceField):  # a foreign key's form field
            coupon.queryset = Coupon.live.all()

    def call_service(self) -> AppliedCoupon:
        data = self.cleaned_data
        return services.applied_coupon_create(
            customer=data["customer"],
            coupon=data["coupon"],
            **_amount_arguments(data.get("amount"), currency_when_empty=None),
            percentage_rate=data.get("percentage_rate"),
            frequency=data.get("frequency") or None,
            frequency_duration=data.get("frequency_duration"),
        )


@admin.register(AppliedCoupon)
class AppliedCouponAdmin(ServiceAdmin):
    """Granted through the service (add), never edited: terminate it and grant another."""

    form = AppliedCouponForm
    list_display = [
        "coupon",
        "customer",
        "status",
        "amount_money",
        "remaining_money",
        "frequency_duration_remaining",
    ]
    amount_money = money_display("amount")
    remaining_money = money_display(
        "amount_remaining", currency=lambda applied: str(applied.amount_currency), description="amount remaining"
    )
    rate_percent = percent_display("percentage_rate", description="percentage rate")
    # An existing applied coupon's page: read-only, amounts as money.
    _SHOWN = [
        "coupon",
        "customer",
        "status",
        "amount_money",
        "remaining_money",
        "rate_percent",
        "frequency",
        "frequency_duration",
        "frequency_duration_remaining",
    ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._SHOWN if obj is not None else super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._SHOWN if obj is not None else super().get_readonly_fields(request, obj)

    list_filter = ["status", "frequency"]
    list_select_related = ["coupon", "customer"]
    search_fields = ["coupon__code", "customer__external_id"]
    raw_id_fields = ["customer"]
    actions = ["terminate"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Terminate selected applied coupons")
    def terminate(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for applied in queryset.filter(status="active"):
            services.applied_coupon_terminate(applied_coupon=applied)
            self.log_change(request, applied, "Terminated")
            done += 1
        self.message_user(request, f"{done} applied coupon(s) terminated.", messages.SUCCESS)


# --------------------------------------------------------------------------------------------
# Subscriptions


class SubscriptionForm(ServiceForm):
    class Meta:
        model = Subscription
        fields = ["customer", "plan", "external_id", "name", "billing_time", "subscription_at", "ending_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["subscription_at"].required = False
        plan = self.fields.get("plan")
        if plan is not None:
            assert isinstance(plan, forms.ModelChoiceField)  # a foreign key's form field
            plan.queryset = Plan.live.all()

    def call_service(self) -> Subscription:
        data = self.cleaned_data
        if self.instance._state.adding:
            return services.subscription_create(
                customer=data["customer"],
                plan=data["plan"],
                external_id=data.get("external_id") or "",
                name=data.get("name") or "",
                billing_time=data.get("billing_time"),
                subscription_at=data.get("subscription_at"),
                ending_at=data.get("ending_at"),
            )
        current = Subscription.objects.get(pk=self.instance.pk)
        changes: dict[str, Any] = {"name": data.get("name") or ""}
        if data.get("ending_at") != current.ending_at:
            changes["ending_at"] = data.get("ending_at")
        if data.get("subscription_at") and data["subscription_at"] != current.subscription_at:
            changes["subscription_at"] = data["subscription_at"]
        return services.subscription_update(subscription=current, **changes)


@admin.register(Subscription)
class SubscriptionAdmin(ServiceAdmin):
    form = SubscriptionForm
    list_display = [
        "external_id",
        "customer",
        "plan",
        "status",
        "billing_time",
        "subscription_at",
        "started_at",
        "terminated_at",
    ]
    list_filter = ["status", "plan", "billing_time"]
    list_select_related = ["customer", "plan"]
    search_fields = ["=external_id", "customer__external_id"]
    raw_id_fields = ["customer"]
    readonly_fields = [
        "status",
        "started_at",
        "terminated_at",
        "canceled_at",
        "previous_subscription",
        "downgrade_at",
        "entitlements",
        "created_at",
    ]
    actions = ["terminate"]

    @admin.display(description="Entitlements (plan's, overridden, removed)")
    def entitlements(self, obj: Subscription | None) -> str:
        return entitlements_admin.subscription_entitlements_panel(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # A started subscription keeps its customer, plan and id: a plan change is a new row.
            fields += ["customer", "plan", "external_id", "billing_time"]
        return fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Terminate selected subscriptions (cancel pending ones)")
    def terminate(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for subscription in queryset.filter(status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING]):
            services.subscription_terminate(subscription=subscription)
            self.log_change(request, subscription, "Terminated")
            done += 1
        self.message_user(request, f"{done} subscription(s) terminated or canceled.", messages.SUCCESS)
