"""What a run bills: the billing window of a subscription for a reason at an instant
(`window_for`, the one reason dispatch), and every window due at an instant (`due_windows`,
the catch-up policy). Pure: periods come from plans.periods, nothing here queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from plans import periods
from plans.models import OnTerminationInvoice, Subscription

from .models import InvoicingReason

_TICK = timedelta(microseconds=1)

FINAL_REASONS = (InvoicingReason.UPGRADING, InvoicingReason.SUBSCRIPTION_TERMINATING)


@dataclass(frozen=True)
class BillingWindow:
    """One subscription-period to bill. `fee_period` is the period the subscription fee covers
    (None: no subscription fee on this invoice); `charges_*` the usage period (None: no usage)."""

    reason: str
    from_datetime: datetime
    to_datetime: datetime
    timestamp: datetime
    fee_period: periods.Period | None
    charges_period: periods.Period | None

    @property
    def charges_from_datetime(self) -> datetime | None:
        return self.charges_period.from_datetime if self.charges_period else None

    @property
    def charges_to_datetime(self) -> datetime | None:
        return self.charges_period.to_datetime if self.charges_period else None


def billing_start(subscription: Subscription) -> datetime:
    """The instant billing of `subscription` starts (its start, never before subscription_at)."""
    start = subscription.started_at or subscription.subscription_at
    return max(start, subscription.subscription_at)


def window_for(subscription: Subscription, reason: str, at: datetime) -> BillingWindow | None:
    """The window `subscription` bills for `reason` at `at`: a period boundary (periodic), its
    start (starting), its end (upgrading, terminating: `at` is its terminated_at), or the
    instant of a pay-in-advance charge's event. None when there is nothing to bill."""
    if reason == InvoicingReason.SUBSCRIPTION_PERIODIC:
        return periodic_window(subscription, at)
    if reason == InvoicingReason.SUBSCRIPTION_STARTING:
        return starting_window(subscription) if bills_start(subscription) else None
    if reason == InvoicingReason.IN_ADVANCE_CHARGE:
        return in_advance_charge_window(subscription, at)
    if reason in FINAL_REASONS:
        return _final(subscription, reason=reason) if subscription.terminated_at is not None else None
    raise ValueError(f"unknown invoicing reason {reason!r}")


def periodic_window(subscription: Subscription, boundary: datetime) -> BillingWindow:
    """The invoice due at `boundary` (a period end): in arrears, the ended period's fee and
    usage; in advance, the next period's fee and the ended period's usage. A boundary that only
    ends a monthly charges period of a yearly plan bills the usage alone."""
    ended = periods.subscription_period(subscription, boundary - _TICK)
    usage = periods.subscription_charges_period(subscription, boundary - _TICK)
    if ended.to_datetime != boundary:  # only a charges boundary
        return BillingWindow(
            reason=InvoicingReason.SUBSCRIPTION_PERIODIC,
            from_datetime=usage.from_datetime,
            to_datetime=usage.to_datetime,
            timestamp=boundary,
            fee_period=None,
            charges_period=usage,
        )
    fee_period = periods.subscription_period(subscription, boundary) if subscription.plan.pay_in_advance else ended
    return BillingWindow(
        reason=InvoicingReason.SUBSCRIPTION_PERIODIC,
        from_datetime=fee_period.from_datetime,
        to_datetime=fee_period.to_datetime,
        timestamp=boundary,
        fee_period=fee_period,
        charges_period=usage,
    )


def starting_window(subscription: Subscription) -> BillingWindow:
    """A pay-in-advance plan's first (prorated) period, billed when it starts (`bills_start`)."""
    start = billing_start(subscription)
    first = periods.subscription_period(subscription, start)
    return BillingWindow(
        reason=InvoicingReason.SUBSCRIPTION_STARTING,
        from_datetime=first.from_datetime,
        to_datetime=first.to_datetime,
        timestamp=start,
        fee_period=first,
        charges_period=None,
    )


def _final(subscription: Subscription, *, reason: str) -> BillingWindow:
    """The last, possibly partial period of a terminated subscription (terminated, downgraded
    or upgraded): usage up to the end; the fee in arrears for the days used (a fee paid in
    advance was billed already, its unused part is credited). An upgrade's switch day belongs
    to the new plan, so the old plan's last period does not count it."""
    end = subscription.terminated_at
    assert end is not None, "a final window needs terminated_at"
    tz = periods.subscription_timezone(subscription)
    probe = max(end - _TICK, billing_start(subscription))
    end_day_used = reason != InvoicingReason.UPGRADING
    last = periods.clip_to(periods.subscription_period(subscription, probe), end, tz, end_day_used=end_day_used)
    usage = periods.clip_to(
        periods.subscription_charges_period(subscription, probe), end, tz, end_day_used=end_day_used
    )
    return BillingWindow(
        reason=reason,
        from_datetime=last.from_datetime,
        to_datetime=last.to_datetime,
        timestamp=end,
        fee_period=None if subscription.plan.pay_in_advance else last,
        charges_period=usage,
    )


def in_advance_charge_window(subscription: Subscription, at: datetime) -> BillingWindow:
    """The invoice of one event of a pay-in-advance charge at `at`: the billing period holding
    it and the charges period its fee covers; no subscription fee."""
    billing_period = periods.subscription_period(subscription, at)
    return BillingWindow(
        reason=InvoicingReason.IN_ADVANCE_CHARGE,
        from_datetime=billing_period.from_datetime,
        to_datetime=billing_period.to_datetime,
        timestamp=at,
        fee_period=None,
        charges_period=periods.subscription_charges_period(subscription, at),
    )


# --------------------------------------------------------------------------------------------
# The catch-up policy: what is due at an instant


def bills_start(subscription: Subscription) -> bool:
    """Does `subscription` get a starting invoice? A pay-in-advance plan that started, unless
    its start is on a local day before Tollgate was told of it: a backdated start counts as paid
    for the current period (Lago's app/services/subscriptions/create_service.rb bills in
    advance at creation only a start of today; guide/subscriptions/assign-plan)."""
    if not subscription.plan.pay_in_advance or subscription.started_at is None:
        return False
    tz = periods.subscription_timezone(subscription)
    start_day = periods.local_date(billing_start(subscription), tz)
    return start_day >= periods.local_date(subscription.recorded_at, tz)


def billing_horizon(subscription: Subscription) -> datetime:
    """Periods that end at or before this instant are never billed: the subscription's start,
    or when Tollgate was told of it if later (a backdated subscription's past periods)."""
    return max(billing_start(subscription), subscription.recorded_at)


def next_boundary(subscription: Subscription, after: datetime) -> datetime:
    """The first period boundary of `subscription` strictly after `after`: the end of the billing
    period holding `after`, or of its monthly charges period when that comes first."""
    boundary = periods.subscription_period(subscription, after).to_datetime
    if subscription.plan.bill_charges_monthly:
        boundary = min(boundary, periods.subscription_charges_period(subscription, after).to_datetime)
    return boundary


def latest_boundary(subscription: Subscription, at: datetime) -> datetime | None:
    """The last period boundary at or before `at` after the billing horizon, else None."""
    horizon = billing_horizon(subscription)
    if at <= horizon:
        return None
    boundary = periods.subscription_period(subscription, at).from_datetime
    if subscription.plan.bill_charges_monthly:
        boundary = max(boundary, periods.subscription_charges_period(subscription, at).from_datetime)
    return boundary if boundary > horizon else None


def periodic_boundaries(
    subscription: Subscription, *, at: datetime, billed_through: datetime | None, stop_before: datetime | None
) -> list[datetime]:
    """Every period boundary of `subscription` in (horizon, at] after `billed_through` (its last
    billed periodic invoice) and before `stop_before` (where it ends or changes plan: its final
    invoice bills that period), oldest first."""
    after = billing_horizon(subscription)
    if billed_through is not None:
        after = max(after, billed_through)
    boundaries = []
    boundary = next_boundary(subscription, after)
    while boundary <= at and (stop_before is None or boundary < stop_before):
        boundaries.append(boundary)
        boundary = next_boundary(subscription, boundary)
    return boundaries


@dataclass(frozen=True)
class BilledSoFar:
    """What a subscription's invoices cover already: whether its starting and final invoices
    exist, and the boundary of its last periodic invoice (None: none yet)."""

    starting: bool = False
    final: bool = False
    periodic_through: datetime | None = None


def skips_final_invoice(subscription: Subscription) -> bool:
    """Lago's subscription `on_termination_invoice: skip`: its termination bills no last period
    (Subscriptions::TerminateService#bill_in_arrears_fees?). An upgrade's final invoice is kept."""
    return subscription.on_termination_invoice == OnTerminationInvoice.SKIP


def due_windows(
    subscription: Subscription,
    *,
    at: datetime,
    final_reason: str,
    billed: BilledSoFar,
    swap_at: datetime | None,
) -> list[BillingWindow]:
    """Every window of `subscription` due at `at` and not `billed` yet, oldest first: its
    starting invoice, each periodic invoice since the last billed one, and its final invoice
    once it has ended. The unique InvoiceSubscription row, not this, makes billing one twice a
    no-op."""
    due: list[BillingWindow] = []
    if billing_start(subscription) > at:
        return due
    if not billed.starting and bills_start(subscription):
        due.append(starting_window(subscription))
    ended = subscription.terminated_at if subscription.terminated_at and subscription.terminated_at <= at else None
    stops = [moment for moment in (subscription.terminated_at, subscription.ending_at, swap_at) if moment]
    boundaries = periodic_boundaries(
        subscription, at=at, billed_through=billed.periodic_through, stop_before=min(stops) if stops else None
    )
    if not boundaries and billed.periodic_through is not None:
        # Nothing new: the period due at `at` comes back, billed already, so that a rerun (at
        # this instant or an earlier one) reports it as billed.
        last = latest_boundary(subscription, at)
        if last is not None and last <= billed.periodic_through and (not stops or last < min(stops)):
            boundaries = [last]
    for boundary in boundaries:
        due.append(periodic_window(subscription, boundary))
    skipped = final_reason == InvoicingReason.SUBSCRIPTION_TERMINATING and skips_final_invoice(subscription)
    if ended is not None and not billed.final and not skipped:
        due.append(_final(subscription, reason=final_reason))
    return due
