"""The console's charge pricing editor: a charge's properties as fields by name, tiers (graduated,
volume, graduated percentage) as rows to add and remove (no JavaScript needed: "Add a tier"
posts the page back with one more row), validated by the API's own service, errors in words."""

# Saving pricing that live subscriptions use first asks, on a confirmation page, whether the
# change applies to them or only to new subscriptions (plans.services.plan_update's
# cascade_updates None / False). Each save writes an admin LogEntry on the plan (its timeline).

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from billing_project.money import decimal_places, format_precise, price_text, to_cents

from . import charge_edits
from .errors import PlansError
from .models import Charge, Plan, SubscriptionStatus

CHANGE_PERMISSION = "plans.change_plan"
LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING)

# Service codes in the words finance staff read.
WORDS = {
    "invalid_amount": "Enter an amount of 0 or more, such as 0.05.",
    "invalid_rate": "Enter a rate in percent, 0 or more, such as 1.5.",
    "invalid_fixed_amount": "Enter a fixed amount of 0 or more.",
    "invalid_package_size": "The package size is a whole number above 0.",
    "invalid_free_units": "Free units are a whole number, 0 or more.",
    "invalid_free_units_per_events": "Free events are a whole number above 0.",
    "invalid_free_units_per_total_aggregation": "Enter the free usage as a number, 0 or more.",
    "per_transaction_max_lower_than_per_transaction_min": "The maximum per transaction is below the minimum.",
    "attached_to_subscriptions": "Cannot change while live subscriptions use this plan.",
    "invalid_aggregation_type_or_charge_model": "This pricing model does not fit this metric or its billing timing.",
    "invalid_billable_metric_or_charge_model": "This pricing model does not fit this metric.",
    "value_is_invalid": "This value is not valid here.",
    "value_already_exist": "Another charge of this plan already uses this code.",
}
for _key in ("graduated_ranges", "volume_ranges", "graduated_percentage_ranges"):
    WORDS[f"missing_{_key}"] = "Add at least one tier."
    WORDS[f"invalid_{_key}"] = (
        "Tiers must start at 0, each tier must start one above the previous tier's last unit, and "
        "only the last tier may be left without a last unit."
    )

MODEL_CHOICES = [
    ("standard", "Standard (a price per unit)"),
    ("package", "Package (a price per package of units)"),
    ("percentage", "Percentage (of the amount aggregated)"),
    ("graduated", "Graduated (each tier's units at the tier's price)"),
    ("volume", "Volume (all units at the price of the tier reached)"),
    ("graduated_percentage", "Graduated percentage"),
]
TIERED = {
    "graduated": "graduated_ranges",
    "volume": "volume_ranges",
    "graduated_percentage": "graduated_percentage_ranges",
}


def _amount(**kwargs: Any) -> forms.DecimalField:
    return forms.DecimalField(required=False, min_value=0, max_digits=20, decimal_places=6, **kwargs)


class PricingForm(forms.Form):
    """Every model's properties, by name; only the chosen model's are shown and used."""

    charge_model = forms.ChoiceField(choices=MODEL_CHOICES, label="Pricing model")
    amount = _amount(label="Price", help_text="Per unit (standard) or per package (package).")
    package_size = forms.IntegerField(required=False, min_value=1, label="Units per package")
    free_units = forms.IntegerField(required=False, min_value=0, label="Free units")
    rate = _amount(label="Rate (%)")
    fixed_amount = _amount(label="Fixed amount per event")
    free_units_per_events = forms.IntegerField(required=False, min_value=1, label="Free events")
    free_units_per_total_aggregation = _amount(label="Free usage")
    per_transaction_min_amount = _amount(label="Minimum per transaction")
    per_transaction_max_amount = _amount(label="Maximum per transaction")
    min_amount = _amount(label="Spending minimum per period")

    FIELDS_OF = {
        "standard": ("amount",),
        "package": ("amount", "package_size", "free_units"),
        "percentage": (
            "rate",
            "fixed_amount",
            "free_units_per_events",
            "free_units_per_total_aggregation",
            "per_transaction_min_amount",
            "per_transaction_max_amount",
        ),
    }


class TierForm(forms.Form):
    """One tier. A row left blank is ignored; the tier's first unit follows the previous row."""

    from_value = forms.IntegerField(required=False, min_value=0, label="First unit")
    to_value = forms.IntegerField(required=False, min_value=0, label="Last unit (blank: no limit)")
    per_unit_amount = _amount(label="Price per unit")
    rate = _amount(label="Rate (%)")
    flat_amount = _amount(label="Flat fee")

    def is_blank(self) -> bool:
        data = getattr(self, "cleaned_data", {}) or {}
        return all(
            data.get(name) in (None, "")
            for name in ("from_value", "to_value", "per_unit_amount", "rate", "flat_amount")
        )


TierFormSet = forms.formset_factory(TierForm, extra=1, can_delete=True)


def _text(value: Any) -> str | None:
    return None if value in (None, "") else format(Decimal(value).normalize(), "f")


# Properties that are amounts of the plan's currency (the others are counts or rates).
_AMOUNTS = {
    "amount",
    "fixed_amount",
    "per_transaction_min_amount",
    "per_transaction_max_amount",
    "per_unit_amount",
    "flat_amount",
}


def _input(name: str, value: Any, currency: str) -> Any:
    """An amount as its input shows it ("29.40", "0.002"); other values as they are."""
    if name in _AMOUNTS and value not in (None, ""):
        return price_text(value, currency)
    return value


def _initial(charge: Charge) -> dict[str, Any]:
    properties = charge.properties or {}
    currency = str(charge.plan.amount.currency)
    minor = Decimal(10) ** -decimal_places(currency)
    initial: dict[str, Any] = {"charge_model": charge.charge_model, "min_amount": charge.min_amount.quantize(minor)}
    for names in PricingForm.FIELDS_OF.values():
        for name in names:
            if properties.get(name) not in (None, ""):
                initial[name] = _input(name, properties[name], currency)
    return initial


def _tier_rows(charge_model: str, properties: dict[str, Any], currency: str) -> list[dict[str, Any]]:
    return [
        {name: _input(name, value, currency) for name, value in tier.items()}
        for tier in properties.get(TIERED.get(charge_model, ""), []) or []
    ]


_MODEL_NAMES = {code: label.split(" (")[0] for code, label in MODEL_CHOICES}


def pricing_summary(charge: Charge) -> str:
    """The charge's prices in words and money, for the plan page ("Standard: USD 0.05 per unit")."""
    properties = charge.properties or {}
    currency = str(charge.plan.amount.currency)
    name = _MODEL_NAMES.get(charge.charge_model, charge.charge_model)
    parts: list[str] = []
    if charge.charge_model in TIERED:
        for tier in properties.get(TIERED[charge.charge_model]) or []:
            last = tier.get("to_value")
            units = f"{tier.get('from_value')} to {last}" if last is not None else f"{tier.get('from_value')} and above"
            if charge.charge_model == "graduated_percentage":
                price = f"{Decimal(tier.get('rate') or 0).normalize():f}%"
            else:
                price = f"{format_precise(Decimal(tier.get('per_unit_amount') or 0), currency)} per unit"
            flat = Decimal(tier.get("flat_amount") or 0)
            parts.append(f"{units}: {price}" + (f" + {format_precise(flat, currency)} flat" if flat else ""))
    elif charge.charge_model == "percentage":
        parts.append(f"{Decimal(properties.get('rate') or 0).normalize():f}%")
        for key, label in (
            ("fixed_amount", "per event"),
            ("per_transaction_min_amount", "minimum per transaction"),
            ("per_transaction_max_amount", "maximum per transaction"),
        ):
            if properties.get(key) not in (None, ""):
                parts.append(f"{format_precise(Decimal(properties[key]), currency)} {label}")
    elif properties.get("amount") not in (None, ""):
        price = format_precise(Decimal(properties["amount"]), currency)
        if charge.charge_model == "package":
            parts.append(f"{price} per {properties.get('package_size') or 1} units")
            if properties.get("free_units"):
                parts.append(f"{properties['free_units']} free units")
        else:
            parts.append(f"{price} per unit")
    if charge.min_amount:
        parts.append(f"spending minimum {format_precise(charge.min_amount, currency)}")
    return f"{name}: {'; '.join(parts)}" if parts else name


def _tiers_from(formset: Any, charge_model: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for form in formset.forms:
        data = getattr(form, "cleaned_data", None)
        if not data or data.get("DELETE") or form.is_blank():
            continue
        from_value = data.get("from_value")
        if from_value is None:  # follows the previous tier
            previous = rows[-1]["to_value"] if rows else -1
            from_value = (previous if previous is not None else -1) + 1
        tier: dict[str, Any] = {"from_value": from_value, "to_value": data.get("to_value")}
        if charge_model == "graduated_percentage":
            tier["rate"] = _text(data.get("rate"))
        else:
            tier["per_unit_amount"] = _text(data.get("per_unit_amount"))
        tier["flat_amount"] = _text(data.get("flat_amount")) or "0"
        rows.append(tier)
    return rows


def properties_from(form: PricingForm, formset: Any) -> dict[str, Any]:
    charge_model = form.cleaned_data["charge_model"]
    if charge_model in TIERED:
        return {TIERED[charge_model]: _tiers_from(formset, charge_model)}
    properties: dict[str, Any] = {}
    for name in PricingForm.FIELDS_OF.get(charge_model, ()):
        value = form.cleaned_data.get(name)
        if value is None:
            continue
        properties[name] = value if isinstance(value, int) else _text(value)
    if charge_model == "package":
        properties.setdefault("free_units", 0)
    return properties


def error_words(error: PlansError) -> list[str]:
    if not error.details:
        return [WORDS.get(error.code, error.code.replace("_", " ").capitalize() + ".")]
    return [
        f"{field.replace('_', ' ').capitalize()}: {WORDS.get(code, code.replace('_', ' '))}"
        for field, codes in error.details.items()
        for code in codes
    ]


def _changes(form: PricingForm, formset: Any, currency: str) -> dict[str, Any]:
    return {
        "charge_model": form.cleaned_data["charge_model"],
        "properties": properties_from(form, formset),
        "min_amount_cents": to_cents(form.cleaned_data.get("min_amount") or Decimal(0), currency),
    }


def _save(
    request: HttpRequest, model_admin: admin.ModelAdmin, charge: Charge, changes: dict[str, Any], cascade: str
) -> PlansError | None:
    plan = charge.plan
    live = plan.subscriptions.filter(status__in=LIVE).count()
    try:
        charge_edits.plan_charge_update(
            charge=charge, changes=changes, cascade_updates=False if cascade == "new" else None
        )
    except PlansError as error:
        return error
    if live and cascade == "new":
        reach = f"only new subscriptions; the {live} live subscription(s) keep their terms"
    else:
        reach = f"applies to {live} live subscription(s)"
    model_admin.log_change(request, plan, f"Pricing of charge {charge.code} changed ({reach}).")
    messages.success(request, f"Pricing of {charge.code} saved: {reach}.")
    return None


def charge_pricing_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str, charge_id: str
) -> HttpResponse:
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    plan = get_object_or_404(Plan, pk=object_id, deleted_at__isnull=True)
    charge = get_object_or_404(
        Charge.objects.select_related("billable_metric", "plan"), pk=charge_id, plan=plan, deleted_at__isnull=True
    )
    currency = str(plan.amount.currency)
    plan_url = reverse("admin:plans_plan_change", args=[plan.pk])
    errors: list[str] = []
    if request.method == "POST":
        form = PricingForm(request.POST)
        formset = TierFormSet(request.POST, prefix="tiers")
        valid = form.is_valid() and formset.is_valid()
        if valid and ("_add_tier" in request.POST or "_refresh" in request.POST):
            # Posted back to show one more row (or another model's fields): nothing is saved.
            rows = _tiers_from(formset, form.cleaned_data["charge_model"])
            form = PricingForm(initial=form.cleaned_data)
            formset = TierFormSet(initial=[*rows, {}], prefix="tiers")
        elif valid:
            changes = _changes(form, formset, currency)
            live = live_subscriptions(plan)
            cascade = request.POST.get("_cascade", "")
            if live and cascade not in ("all", "new"):
                from .admin import dry_run

                error = dry_run(lambda: charge_edits.plan_charge_update(charge=charge, changes=changes))
                if error is None:
                    return confirm_page(request, plan, f"the pricing of charge {charge.code}", live)
                errors = error_words(error)
            else:
                error = _save(request, model_admin, charge, changes, cascade)
                if error is None:
                    return HttpResponseRedirect(plan_url)
                errors = error_words(error)
    else:
        form = PricingForm(initial=_initial(charge))
        formset = TierFormSet(
            initial=_tier_rows(charge.charge_model, charge.properties or {}, currency), prefix="tiers"
        )
    chosen = form["charge_model"].value() or charge.charge_model
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Pricing of {charge.code}",
        "opts": Plan._meta,
        "plan": plan,
        "plan_url": plan_url,
        "charge": charge,
        "form": form,
        "formset": formset,
        "chosen": chosen,
        "tiered": chosen in TIERED,
        "field_names": PricingForm.FIELDS_OF.get(chosen, ()),
        "percentage_tiers": chosen == "graduated_percentage",
        "errors": errors,
        "currency": currency,
    }
    return TemplateResponse(request, "admin/tollgate/charge_pricing.html", context)


def live_subscriptions(plan: Plan) -> int:
    """Live subscriptions on the plan itself (not those with their own terms)."""
    return plan.subscriptions.filter(status__in=LIVE).count()


def confirm_page(request: HttpRequest, plan: Plan, what: str, live: int) -> HttpResponse:
    """The question, with the posted form carried in hidden fields: answering re-posts it with
    `_cascade` = "all" or "new"."""
    hidden = [
        (name, value)
        for name, values in request.POST.lists()
        for value in values
        if name not in ("csrfmiddlewaretoken", "_cascade")
    ]
    overridden = plan.children.filter(deleted_at__isnull=True, subscriptions__status__in=LIVE).distinct().count()
    return TemplateResponse(
        request,
        "admin/tollgate/plan_change_confirm.html",
        {
            "title": f"Apply the change to {plan.code}'s live subscriptions?",
            "opts": Plan._meta,
            "plan": plan,
            "what": what,
            "live": live,
            "overridden": overridden,
            "hidden": hidden,
            "plan_url": reverse("admin:plans_plan_change", args=[plan.pk]),
        },
    )
