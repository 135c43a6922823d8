"""The draft PDF preview on the invoice page: rendered now, marked DRAFT, never stored."""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from pypdf import PdfReader

from invoicing.models import InvoiceEvent, InvoiceStatus
from tests.console.factories import plan, subscription, subscription_fee
from tests.console.test_admin_console import _ensure_roles

pytestmark = pytest.mark.django_db


def _login(client, group: str) -> None:
    _ensure_roles()
    user = User.objects.create_user(group.replace(" ", ""), "x@tollgate.test", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)


def _pdf_text(data: bytes) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def test_a_draft_previews_as_a_pdf_marked_draft_and_nothing_is_stored(client):
    _login(client, "Support")  # a read: Support (view only) may preview
    draft = subscription_fee(
        subscription("acme", plan("monthly", "monthly", 10000)),
        "100",
        issued=date(2026, 6, 1),
        status=InvoiceStatus.DRAFT,
    )
    page = client.get(reverse("admin:invoicing_invoice_change", args=[draft.pk])).content.decode()
    url = reverse("admin:invoicing_invoice_preview_pdf", args=[draft.pk])
    assert url in page
    events_before = InvoiceEvent.objects.filter(invoice=draft).count()

    response = client.get(url)

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert "no-store" in response["Cache-Control"]
    data = b"".join(response.streaming_content) if response.streaming else response.content
    assert data.startswith(b"%PDF")
    text = _pdf_text(data)
    assert "DRAFT" in text and "USD 100.00" in text
    draft.refresh_from_db()
    assert not draft.file and InvoiceEvent.objects.filter(invoice=draft).count() == events_before


def test_a_finalized_invoice_has_no_preview(client):
    _login(client, "Finance Manager")
    invoice = subscription_fee(subscription("acme", plan("monthly", "monthly", 10000)), "100", issued=date(2026, 6, 1))
    page = client.get(reverse("admin:invoicing_invoice_change", args=[invoice.pk])).content.decode()
    assert "preview-pdf" not in page
    response = client.get(reverse("admin:invoicing_invoice_preview_pdf", args=[invoice.pk]))
    assert response.status_code == 302


def test_a_user_without_the_view_permission_is_refused(client):
    user = User.objects.create_user("nobody", "n@tollgate.test", "pw", is_staff=True)
    client.force_login(user)
    draft = subscription_fee(
        subscription("acme", plan("monthly", "monthly", 10000)),
        "100",
        issued=date(2026, 6, 1),
        status=InvoiceStatus.DRAFT,
    )
    assert client.get(reverse("admin:invoicing_invoice_preview_pdf", args=[draft.pk])).status_code == 403
