"""An invoice's totals, in Lago's order: fees, then coupons (before taxes), then taxes per rate,
then credit note credits, then prepaid credits.

Coupons are spread over the fees they apply to (pro rata of the fee amounts) so that each fee's
tax base is its amount net of its coupon share; each tax rate is applied to the sum of the bases
of the fees it applies to and rounded once (plans.selectors.fee_taxes says which taxes apply).
Everything here works on unsaved rows; `coupons_apply` alone writes (it consumes the applied
coupons, under their row locks, inside the caller's transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from billing_project.money import round_amount
from customers.models import Customer
from plans.models import AppliedCoupon, CouponFrequency, CouponType, Tax
from plans.selectors import customer_default_taxes, owner_taxes

from .models import Credit, Fee, FeeAppliedTax, FeeType, Invoice, InvoiceAppliedTax

ZERO = Decimal(0)
HUNDRED = Decimal(100)


# --------------------------------------------------------------------------------------------
# Coupons


def _coupon_applies(applied: AppliedCoupon, fee: Fee) -> bool:
    coupon = applied.coupon
    if coupon.limited_plans:
        plan_ids = {plan.pk for plan in coupon.plans.all()}
        if fee.subscription is None:
            return False
        # A subscription with its own terms is on an override (a child plan) of the coupon's plan.
        plan = fee.subscription.plan
        return plan.pk in plan_ids or plan.parent_id in plan_ids
    if coupon.limited_billable_metrics:
        metric_ids = {metric.pk for metric in coupon.billable_metrics.all()}
        return fee.fee_type == FeeType.CHARGE and fee.charge is not None and fee.charge.billable_metric_id in metric_ids
    return True


def coupons_apply(*, invoice: Invoice, fees: Sequence[Fee]) -> list[Credit]:
    """Consume the customer's active coupons on `fees` (oldest coupon first), before taxes.

    A fixed amount takes at most what is left of the fees it applies to; a once-only fixed amount
    carries what it could not use to the next invoices (amount_remaining); a percentage takes its
    rate of them. Once-only coupons end when used up, recurring ones after frequency_duration
    invoices. Returns the unsaved Credit rows; each fee's precise_coupons_amount is its share."""
    base_total = sum((fee.amount for fee in fees), ZERO)
    if base_total <= 0:
        return []
    currency = invoice.currency
    applied_coupons = list(
        AppliedCoupon.objects.select_for_update(of=("self",))
        .filter(customer_id=invoice.customer_id, status="active")
        .select_related("coupon")
        .prefetch_related("coupon__plans", "coupon__billable_metrics")
        .order_by("created_at", "id")
    )
    credits: list[Credit] = []
    for applied in applied_coupons:
        eligible = [fee for fee in fees if _coupon_applies(applied, fee)]
        left = sum((fee.amount - fee.precise_coupons_amount for fee in eligible), ZERO)
        if left <= 0:
            continue
        if applied.coupon.coupon_type == CouponType.PERCENTAGE:
            amount = round_amount(left * (applied.percentage_rate or ZERO) / HUNDRED, currency)
        else:
            if applied.amount is not None and str(applied.amount.currency) != currency:
                continue  # a coupon in another currency never applies
            available = (
                applied.amount_remaining
                if applied.frequency == CouponFrequency.ONCE and applied.amount_remaining is not None
                else (applied.amount.amount if applied.amount is not None else ZERO)
            )
            amount = round_amount(min(available, left), currency)
        if amount <= 0:
            continue
        _spread(amount, eligible, left)
        credits.append(Credit(invoice=invoice, applied_coupon=applied, amount=amount, before_taxes=True))
        _consume(applied, amount)
    return credits


def _spread(amount: Decimal, fees: Sequence[Fee], base: Decimal) -> None:
    for fee in fees:
        share = fee.amount - fee.precise_coupons_amount
        fee.precise_coupons_amount += amount * share / base


def _consume(applied: AppliedCoupon, amount: Decimal) -> None:
    fields = []
    if applied.coupon.coupon_type == CouponType.FIXED_AMOUNT and applied.frequency == CouponFrequency.ONCE:
        applied.amount_remaining = max((applied.amount_remaining or ZERO) - amount, ZERO)
        fields.append("amount_remaining")
        if applied.amount_remaining <= 0:
            applied.status = "terminated"
            fields.append("status")
    elif applied.frequency == CouponFrequency.ONCE:
        applied.status = "terminated"
        fields.append("status")
    elif applied.frequency == CouponFrequency.RECURRING:
        applied.frequency_duration_remaining = max((applied.frequency_duration_remaining or 0) - 1, 0)
        fields.append("frequency_duration_remaining")
        if applied.frequency_duration_remaining <= 0:
            applied.status = "terminated"
            fields.append("status")
    if fields:
        if "status" in fields:
            from django.utils import timezone

            applied.terminated_at = timezone.now()
            fields.append("terminated_at")
        applied.save(update_fields=fields)


def coupons_restore(*, invoice: Invoice) -> None:
    """Give back what a draft's coupon credits consumed (before its fees are computed again)."""
    assert transaction.get_connection().in_atomic_block
    credits = list(
        Credit.objects.filter(invoice=invoice, applied_coupon__isnull=False).select_related("applied_coupon__coupon")
    )
    for credit in credits:
        assert credit.applied_coupon_id is not None  # the query keeps coupon credits only
        applied = AppliedCoupon.objects.select_for_update().select_related("coupon").get(pk=credit.applied_coupon_id)
        fields = []
        if applied.coupon.coupon_type == CouponType.FIXED_AMOUNT and applied.frequency == CouponFrequency.ONCE:
            applied.amount_remaining = (applied.amount_remaining or ZERO) + credit.amount
            fields.append("amount_remaining")
        elif applied.frequency == CouponFrequency.RECURRING:
            applied.frequency_duration_remaining = (applied.frequency_duration_remaining or 0) + 1
            fields.append("frequency_duration_remaining")
        if applied.status == "terminated" and applied.terminated_at is not None:
            applied.status = "active"
            applied.terminated_at = None
            fields += ["status", "terminated_at"]
        if fields:
            applied.save(update_fields=fields)
    Credit.objects.filter(pk__in=[c.pk for c in credits]).delete()


# --------------------------------------------------------------------------------------------
# Taxes


def tax_on(base: Decimal, rate: Decimal) -> Decimal:
    """The precise tax of `rate` percent on `base`. Round it once, where a rate's whole base is
    known (the invoice's or the credit note's line per rate), never per fee before summing."""
    return base * rate / HUNDRED


class TaxResolver:
    """plans.selectors.fee_taxes with the customer's fallback looked up once per invoice (the
    plan's and charge's taxes come prefetched)."""

    def __init__(self, customer: Customer, *, fallback: list[Tax] | None = None) -> None:
        self.customer = customer
        # The customer's taxes, else the organization's: given by a run that read them in bulk.
        self._fallback = fallback

    def for_fee(self, fee: Fee) -> list[Tax]:
        override = getattr(fee, "tax_override", None)
        if override is not None:
            return list(override)
        if fee.add_on_id is not None:
            taxes = owner_taxes(add_on=fee.add_on)
        else:
            plan = fee.subscription.plan if fee.subscription is not None else None
            taxes = owner_taxes(plan=plan, charge=fee.charge if fee.charge_id else None)
        if taxes:
            return taxes
        if self._fallback is None:
            self._fallback = customer_default_taxes(self.customer)
        return self._fallback


@dataclass
class TaxLines:
    fee_taxes: list[FeeAppliedTax] = field(default_factory=list)
    invoice_taxes: list[InvoiceAppliedTax] = field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        return sum((tax.amount for tax in self.invoice_taxes), ZERO)


def taxes_compute(*, invoice: Invoice | None, fees: Sequence[Fee], resolver: TaxResolver, currency: str) -> TaxLines:
    """Per fee: its taxes on its base (amount net of coupons), unrounded, and its rounded total;
    per rate: the sum of the bases it applies to times the rate, rounded once."""
    lines = TaxLines()
    bases: dict[str, Decimal] = {}
    taxes_by_code: dict[str, Tax] = {}
    for fee in fees:
        base = fee.amount - fee.precise_coupons_amount
        taxes = resolver.for_fee(fee)
        fee.taxes_rate = sum((tax.rate for tax in taxes), ZERO)
        precise = ZERO
        for tax in taxes:
            amount = tax_on(base, tax.rate)
            precise += amount
            lines.fee_taxes.append(
                FeeAppliedTax(
                    fee=fee,
                    tax=tax,
                    tax_code=tax.code,
                    tax_name=tax.name,
                    tax_rate=tax.rate,
                    tax_description=tax.description,
                    amount=amount,
                )
            )
            bases[tax.code] = bases.get(tax.code, ZERO) + base
            taxes_by_code[tax.code] = tax
        fee.taxes_precise_amount = precise
        fee.taxes_amount = round_amount(precise, currency)
    for code, base in bases.items():
        tax = taxes_by_code[code]
        lines.invoice_taxes.append(
            InvoiceAppliedTax(
                invoice=invoice,
                tax=tax,
                tax_code=code,
                tax_name=tax.name,
                tax_rate=tax.rate,
                tax_description=tax.description,
                fees_amount=round_amount(base, currency),
                amount=round_amount(tax_on(base, tax.rate), currency),
            )
        )
    return lines


# --------------------------------------------------------------------------------------------
# The invoice


def invoice_amounts_set(*, invoice: Invoice, fees: Sequence[Fee], credits: Sequence[Credit], taxes: TaxLines) -> None:
    """Fill the invoice's amounts (before credit notes and prepaid credits, which finalization
    applies to what is left)."""
    invoice.fees_amount = sum((fee.amount for fee in fees), ZERO)
    invoice.coupons_amount = sum((credit.amount for credit in credits if credit.before_taxes), ZERO)
    # Progressive billing's credit (set before, by invoicing.progressive) is before taxes too.
    invoice.sub_total_excluding_taxes_amount = (
        invoice.fees_amount - invoice.progressive_billing_credit_amount - invoice.coupons_amount
    )
    invoice.taxes_amount = taxes.amount
    invoice.sub_total_including_taxes_amount = invoice.sub_total_excluding_taxes_amount + invoice.taxes_amount
    invoice.credit_notes_amount = ZERO
    invoice.prepaid_credit_amount = ZERO
    invoice.total_amount = invoice.sub_total_including_taxes_amount


def invoice_fees_save(
    *, invoice: Invoice, fees: Sequence[Fee], with_coupons: bool = True, resolver: TaxResolver | None = None
) -> None:
    """Coupons, taxes and amounts of `fees` for `invoice`, then every row written in bulk."""
    for fee in fees:
        fee.invoice = invoice
    credits = coupons_apply(invoice=invoice, fees=fees) if with_coupons else []
    resolver = resolver or TaxResolver(invoice.customer)
    taxes = taxes_compute(invoice=invoice, fees=fees, resolver=resolver, currency=invoice.currency)
    invoice_amounts_set(invoice=invoice, fees=fees, credits=credits, taxes=taxes)
    invoice_rows_save(fees=fees, taxes=taxes, credits=credits)


def invoice_rows_save(*, fees: Sequence[Fee], taxes: TaxLines, credits: Sequence[Credit]) -> None:
    """The fees, their taxes and the coupon credits of an invoice, written in bulk."""
    Fee.objects.bulk_create(fees)
    if taxes.fee_taxes:
        FeeAppliedTax.objects.bulk_create(taxes.fee_taxes)
    if taxes.invoice_taxes:
        InvoiceAppliedTax.objects.bulk_create(taxes.invoice_taxes)
    if credits:
        Credit.objects.bulk_create(credits)
