"""`BillableMetric.has_pay_in_advance_charges`: the copy metrics keeps of "a live pay-in-advance
charge prices this metric" (ingestion reads it inside its INSERT to know which new events to
announce). Plans keeps it right through its API and services; a command recomputes it."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from metrics import services as metrics_services
from metrics.models import BillableMetric
from plans import services as plans_services
from tests.factories.plans import make_plan, make_subscription, metric

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _flag(code: str = "api_calls") -> bool:
    return BillableMetric.live.get(code=code).has_pay_in_advance_charges


def _charge(code: str = "api_calls", *, pay_in_advance: bool = True, **fields: Any) -> dict[str, Any]:
    return {
        "billable_metric_id": str(metric(code).pk),
        "charge_model": "standard",
        "properties": {"amount": "1"},
        "pay_in_advance": pay_in_advance,
        **fields,
    }


def _plan(code: str):
    from plans.models import Plan

    return Plan.live.get(code=code)


def _plan_body(charges: list[dict[str, Any]], code: str = "startup") -> dict[str, Any]:
    return {
        "plan": {
            "name": code.title(),
            "code": code,
            "interval": "monthly",
            "amount_cents": 0,
            "amount_currency": "USD",
            "charges": charges,
        }
    }


def test_plans_api_keeps_the_flag(api):
    metric("api_calls")
    metric("storage", aggregation_type="sum_agg", field_name="n")
    assert not _flag()

    created = api.post("/api/v1/plans", _plan_body([_charge(), _charge("storage", pay_in_advance=False)]))
    assert created.status_code == 200, created.json()
    assert (_flag(), _flag("storage")) == (True, False)
    charges = {c["billable_metric_code"]: c["lago_id"] for c in created.json()["plan"]["charges"]}

    # The same charge, no longer billed in advance (no subscription yet, so it may change).
    updated = api.put(
        "/api/v1/plans/startup",
        _plan_body([_charge(pay_in_advance=False, id=charges["api_calls"]), _charge("storage", id=charges["storage"])]),
    )
    assert updated.status_code == 200, updated.json()
    assert (_flag(), _flag("storage")) == (False, True)

    # A charge removed from the list is retired: storage is billed in arrears by nobody now.
    assert api.put("/api/v1/plans/startup", _plan_body([_charge(pay_in_advance=False)])).status_code == 200
    assert (_flag(), _flag("storage")) == (False, False)

    assert api.put("/api/v1/plans/startup", _plan_body([_charge()])).status_code == 200
    assert _flag()
    assert api.delete("/api/v1/plans/startup").status_code == 200
    assert not _flag()


def test_two_plans_one_metric_flag_falls_with_the_last_charge():
    make_plan(code="a", amount_cents=0, charges=[_charge()])
    b = make_plan(code="b", amount_cents=0, charges=[_charge()])
    plans_services.plan_delete(plan=b)
    assert _flag()  # plan a still bills api_calls in advance
    plans_services.plan_delete(plan=_plan("a"))
    assert not _flag()


def test_deleted_metric_recreated_with_the_same_code_starts_without_the_flag(api):
    make_plan(amount_cents=0, charges=[_charge()])
    old = BillableMetric.live.get(code="api_calls")
    # Deleting the metric retires its charges (plans hears billable_metric_deleted after commit).
    with_commit = api.delete("/api/v1/billable_metrics/api_calls")
    assert with_commit.status_code == 200, with_commit.json()
    plans_services.charges_retire_for_metric(billable_metric_id=old.pk)
    old.refresh_from_db()
    assert old.deleted_at is not None and not old.has_pay_in_advance_charges

    body = {"billable_metric": {"name": "Calls", "code": "api_calls", "aggregation_type": "count_agg"}}
    assert api.post("/api/v1/billable_metrics", body).status_code == 200
    assert not _flag()
    make_plan(code="again", amount_cents=0, charges=[_charge()])
    assert _flag()


def test_a_metric_saved_with_a_stale_copy_keeps_the_flag(api):
    stale = metric("api_calls")
    make_plan(amount_cents=0, charges=[_charge()])
    stale.name = "Renamed"
    stale.save()  # the admin's ModelAdmin.save_model does this with the row it loaded
    assert _flag()
    update = api.put("/api/v1/billable_metrics/api_calls", {"billable_metric": {"name": "Calls"}})
    assert update.status_code == 200, update.json()
    assert _flag()


def test_sync_command_repairs_flags_and_is_idempotent():
    make_plan(amount_cents=0, charges=[_charge(), _charge("storage", pay_in_advance=False)])
    make_subscription(plan=_plan("startup"))
    # Rows edited by hand behind the services' back: both flags wrong.
    BillableMetric.objects.filter(code="api_calls").update(has_pay_in_advance_charges=False)
    BillableMetric.objects.filter(code="storage").update(has_pay_in_advance_charges=True)

    out = StringIO()
    call_command("sync_pay_in_advance_flags", "--dry-run", stdout=out)
    assert "2 flag(s) would change: api_calls, storage" in out.getvalue()
    assert (_flag(), _flag("storage")) == (False, True)

    out = StringIO()
    call_command("sync_pay_in_advance_flags", stdout=out)
    assert "2 flag(s) changed" in out.getvalue()
    assert (_flag(), _flag("storage")) == (True, False)
    out = StringIO()
    call_command("sync_pay_in_advance_flags", stdout=out)
    assert "0 flag(s) changed" in out.getvalue()


def test_metrics_sync_service_sets_exactly_the_priced_ones():
    a, b, c = (metric(code) for code in ("a", "b", "c"))
    BillableMetric.objects.filter(pk=c.pk).update(has_pay_in_advance_charges=True)
    changed = metrics_services.billable_metrics_pay_in_advance_sync(
        metric_ids=[a.pk, c.pk], priced_among=lambda ids: [a.pk, b.pk]
    )
    assert changed == 2  # a on, c off; b is not among the ids asked about
    assert [(m.code, m.has_pay_in_advance_charges) for m in BillableMetric.objects.order_by("code")] == [
        ("a", True),
        ("b", False),
        ("c", False),
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_charge_changes_on_one_metric_leave_the_flag_right():
    """Plan b bills api_calls in advance. At once: plan a adds such a charge (and holds its
    transaction open), and plan b is deleted. Without the metric row lock, b's deletion would
    count the charges it sees (none: a's is not committed) and turn the flag off after a set it;
    with it, b's sync waits for a's commit and then counts a's charge."""
    import threading

    from django.db import connection, transaction

    metric("api_calls")
    make_plan(code="b", amount_cents=0, charges=[_charge()])
    a_synced = threading.Event()
    release_a = threading.Event()
    errors: list[BaseException] = []

    def create_a() -> None:
        try:
            with transaction.atomic():
                make_plan(code="a", amount_cents=0, charges=[_charge()])
                a_synced.set()
                release_a.wait(timeout=10)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def delete_b() -> None:
        try:
            plans_services.plan_delete(plan=_plan("b"))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    first = threading.Thread(target=create_a)
    first.start()
    assert a_synced.wait(timeout=10)
    second = threading.Thread(target=delete_b)
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive()  # waiting for the metric row that a's transaction locked
    release_a.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert errors == []
    assert _flag()
