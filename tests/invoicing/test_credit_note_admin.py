"""The credit note admin: read-only notes with their history, and two actions that call the
credit note services (void what is left of the credit, mark a refund made by hand as paid),
reporting per note and writing a LogEntry."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User

from invoicing import credit_note_refunds, credit_notes
from invoicing.models import CreditNote, InvoiceEvent
from tests.factories.credit_notes import fee_of, make_credit_note, make_invoice

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/invoicing/creditnote/"
D = Decimal


def _act(client, action: str, *notes: CreditNote):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [str(n.pk) for n in notes]}, follow=True)


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _refund_note(amount: str = "25.00") -> CreditNote:
    invoice = make_invoice(fees=[{"amount": "100.00"}], paid="100.00")
    return make_credit_note(invoice=invoice, items=[(fee_of(invoice), amount)], refund_amount=amount)


def _credit_note(amount: str = "40.00") -> CreditNote:
    invoice = make_invoice(fees=[{"amount": "100.00"}])
    return make_credit_note(invoice=invoice, items=[(fee_of(invoice), amount)])


def test_notes_are_read_only_with_history_and_actions(admin_client):
    note = _refund_note()

    page = admin_client.get(f"{CHANGELIST}{note.pk}/change/")
    actions = [choice[0] for choice in admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices]

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert "credit_note_created" in page.content.decode()  # the history inline
    assert {"void_credit", "mark_refund_paid"} <= set(actions)
    assert "delete_selected" not in actions
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{note.pk}/delete/").status_code == 403
    assert admin_client.get(CHANGELIST, {"refund_status__exact": "pending"}).context["cl"].result_count == 1


def test_mark_refund_as_paid(admin_client):
    pending = _refund_note()
    credit_only = _credit_note()

    response = _act(admin_client, "mark_refund_paid", pending, credit_only)

    pending.refresh_from_db()
    assert (pending.refund_status, pending.refund_amount) == ("succeeded", D("25.00"))
    assert pending.refunded_at is not None
    event = InvoiceEvent.objects.get(credit_note=pending, kind="credit_note_refund_succeeded")
    assert event.actor == "admin:admin"
    assert event.payload["refund_amount_cents"] == 2500
    assert event.payload["previous_status"] == "pending"
    assert _messages(response) == [
        f"{pending.number}: refund marked paid",
        f"{credit_only.number}: no_refund (not refund marked paid)",
    ]
    assert LogEntry.objects.filter(object_id=str(pending.pk), change_message="Refund marked paid").count() == 1
    assert not LogEntry.objects.filter(object_id=str(credit_only.pk)).exists()

    # Twice: refused, nothing changes (succeeded is final).
    again = _act(admin_client, "mark_refund_paid", pending)
    assert _messages(again) == [f"{pending.number}: invalid_refund_status (not refund marked paid)"]
    assert InvoiceEvent.objects.filter(credit_note=pending, kind="credit_note_refund_succeeded").count() == 1


def test_refund_handed_to_a_provider_cannot_be_marked_paid(admin_client):
    note = _refund_note()
    credit_note_refunds.credit_note_refund_submission_record(
        credit_note=note, provider="stripe", actor="system:payments"
    )

    response = _act(admin_client, "mark_refund_paid", note)

    assert _messages(response) == [f"{note.number}: refund_handled_by_provider (not refund marked paid)"]
    note.refresh_from_db()
    assert note.refund_status == "pending"
    # Once the provider failed, finance may refund by hand and record it.
    credit_note_refunds.credit_note_refund_status_update(
        credit_note=note, status="failed", actor="system:payments", reason="card expired"
    )
    _act(admin_client, "mark_refund_paid", note)
    note.refresh_from_db()
    assert note.refund_status == "succeeded"


def test_void_credit(admin_client):
    available = _credit_note("40.00")
    refund_only = _refund_note()

    response = _act(admin_client, "void_credit", available, refund_only)

    available.refresh_from_db()
    assert (available.credit_status, available.balance_amount) == ("voided", D(0))
    assert available.voided_at is not None
    assert InvoiceEvent.objects.get(credit_note=available, kind="credit_note_voided").actor == "admin:admin"
    assert sorted(_messages(response)) == sorted(
        [
            f"{available.number}: credit voided",
            f"{refund_only.number}: no_voidable_amount (not credit voided)",
        ]
    )
    assert LogEntry.objects.filter(object_id=str(available.pk), change_message="Credit voided").count() == 1


def test_actions_need_the_change_permission(client):
    note = _refund_note()
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_creditnote"))
    client.force_login(viewer)

    page = client.get(CHANGELIST)
    _act(client, "mark_refund_paid", note)

    assert page.status_code == 200
    assert page.context["action_form"] is None  # no action offered without change_creditnote
    note.refresh_from_db()
    assert note.refund_status == "pending"


def test_status_update_rules():
    note = _refund_note()

    with pytest.raises(credit_notes.InvoicingError) as invalid:
        credit_note_refunds.credit_note_refund_status_update(credit_note=note, status="pending", actor="test")
    assert invalid.value.details == {"refund_status": ["value_is_invalid"]}

    failed = credit_note_refunds.credit_note_refund_status_update(
        credit_note=note, status="failed", actor="test", reason="x"
    )
    same = credit_note_refunds.credit_note_refund_status_update(credit_note=note, status="failed", actor="test")
    done = credit_note_refunds.credit_note_refund_status_update(credit_note=note, status="succeeded", actor="test")
    with pytest.raises(credit_notes.NotAllowedError) as final:
        credit_note_refunds.credit_note_refund_status_update(credit_note=note, status="failed", actor="test")

    assert (failed.refund_status, failed.refunded_at) == ("failed", None)
    assert same.refund_status == "failed"
    assert done.refund_status == "succeeded" and done.refunded_at is not None
    assert final.value.code == "invalid_refund_status"
    kinds = list(
        InvoiceEvent.objects.filter(credit_note=note, kind__startswith="credit_note_refund_").values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["credit_note_refund_failed", "credit_note_refund_succeeded"]
