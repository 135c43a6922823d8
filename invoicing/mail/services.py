"""Sending documents by e-mail: the outbox row is written in the transaction that issues the
document (or asks for a resend), the message leaves after commit from a task, and a periodic
sweep sends what a lost task or a failed attempt left pending.

- document_email_enqueue: the row, its timeline entry, and the task after commit.
- document_email_on_issue: the organization's email_settings decide; at most one per document.
- document_email_resend: Lago's resend_email rules (405 setting off, 422 no e-mail or bad address).
- document_email_send: the task's body. A refusal or a failure is recorded on the row and the
  timeline, never raised: the billing that issued the document committed long before.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import make_msgid
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing_project.after_commit import delay_after_commit
from customers.models import Organization

from ..errors import InvoicingError, NotAllowedError
from ..models import InvoiceEvent
from .documents import EMAIL_SETTING_OF, document_message
from .models import DocumentEmail, EmailReason, EmailStatus

logger = logging.getLogger(__name__)

# The task sends at once; the sweep takes a first attempt only once it is this late (lost task).
SWEEP_GRACE = timedelta(minutes=2)
SWEEP_BATCH = 200


def addresses(value: str | None) -> list[str]:
    """A customer's e-mail field: one address or several separated by commas."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def is_valid_address(address: Any) -> bool:
    if not isinstance(address, str):
        return False
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def email_setting_enabled(organization: Organization, document_type: str) -> bool:
    return EMAIL_SETTING_OF.get(document_type) in (organization.email_settings or [])


def _timeline(invoice_ids: Iterable[Any], kind: str, actor: str, payload: dict[str, Any]) -> None:
    InvoiceEvent.objects.bulk_create(
        [InvoiceEvent(invoice_id=invoice_id, kind=kind, actor=actor, payload=payload) for invoice_id in invoice_ids]
    )


def document_email_enqueue(
    *,
    document_type: str,
    document_id: UUID,
    invoice_id: Any,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    reason: str,
    actor: str,
    timeline_invoice_ids: Iterable[Any] | None = None,
) -> DocumentEmail | None:
    """Write the outbox row (inside the caller's transaction) and send it after commit. An
    `issued` e-mail already written for this document is not written twice (None)."""
    from .tasks import send_document_email

    try:
        with transaction.atomic():
            row = DocumentEmail.objects.create(
                document_type=document_type,
                document_id=document_id,
                invoice_id=invoice_id,
                reason=reason,
                to=list(to),
                cc=list(cc),
                bcc=list(bcc),
                actor=actor,
                next_attempt_at=timezone.now() + SWEEP_GRACE,
            )
    except IntegrityError:
        return None
    invoice_ids = list(timeline_invoice_ids) if timeline_invoice_ids is not None else [invoice_id]
    _timeline(
        [pk for pk in invoice_ids if pk is not None],
        "email_queued",
        actor,
        {"email_id": str(row.pk), "document_type": document_type, "reason": reason, "to": row.to, "cc": row.cc},
    )
    delay_after_commit(send_document_email, str(row.pk))
    return row


def document_email_on_issue(
    *,
    document_type: str,
    document_id: UUID,
    invoice_id: Any,
    customer_email: str,
    actor: str,
    organization: Organization | None = None,
) -> DocumentEmail | None:
    """The e-mail of a document just issued, if the organization's email_settings ask for it and
    both the organization (Reply-To) and the customer (To) have an address (as Lago's mailers).
    `organization`: the caller's (a billing run reads it once), else it is read."""
    organization = organization or Organization.current()
    if not email_setting_enabled(organization, document_type) or not organization.email:
        return None
    recipients = [address for address in addresses(customer_email) if is_valid_address(address)]
    if not recipients:
        return None
    return document_email_enqueue(
        document_type=document_type,
        document_id=document_id,
        invoice_id=invoice_id,
        to=recipients,
        reason=EmailReason.ISSUED,
        actor=actor,
    )


def _recipients(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvoicingError.field(field, "value_is_invalid")
    return [item.strip() for item in value if item.strip()]


def document_email_resend(
    *,
    document_type: str,
    document_id: UUID,
    invoice_id: Any,
    finalized: bool,
    customer_email: str,
    to: Any = None,
    cc: Any = None,
    bcc: Any = None,
    actor: str,
) -> DocumentEmail:
    """Lago's resend_email (app/services/emails/resend_service.rb): 405 `<type>_not_finalized`
    for a draft, 405 `email_settings_disabled` when the organization's email_settings leave the
    type out, 422 when the organization has no e-mail, there is no recipient, or an address is
    invalid (nothing is sent); else one message to `to` (default: the customer's e-mail)."""
    if not finalized:
        raise NotAllowedError(f"{document_type}_not_finalized")
    organization = Organization.current()
    if not email_setting_enabled(organization, document_type):
        raise NotAllowedError("email_settings_disabled")
    recipients_to = _recipients(to, "to") or addresses(customer_email)
    recipients_cc = _recipients(cc, "cc")
    recipients_bcc = _recipients(bcc, "bcc")
    errors: dict[str, list[str]] = {}
    if not organization.email:
        errors["billing_entity"] = ["must have email configured"]
    if not recipients_to:
        errors["to"] = ["must have at least one recipient"]
    for field, values in (("to", recipients_to), ("cc", recipients_cc), ("bcc", recipients_bcc)):
        invalid = [address for address in values if not is_valid_address(address)]
        if invalid:
            errors[field] = [f"invalid email format: {', '.join(invalid)}"]
    if errors:
        raise InvoicingError(errors)
    with transaction.atomic():
        row = document_email_enqueue(
            document_type=document_type,
            document_id=document_id,
            invoice_id=invoice_id,
            to=recipients_to,
            cc=recipients_cc,
            bcc=recipients_bcc,
            reason=EmailReason.RESEND,
            actor=actor,
        )
    assert row is not None  # only `issued` e-mails are deduplicated
    return row


# --------------------------------------------------------------------------------------------
# Sending


def _retry_delays() -> list[int]:
    return list(settings.TOLLGATE_EMAIL_RETRY_DELAYS)


def _record_failure(row: DocumentEmail, error: str, *, now: datetime, permanent: bool, invoice_ids: list[Any]) -> None:
    row.attempts += 1
    row.last_error = error[:2000]
    delays = _retry_delays()
    if permanent or row.attempts > len(delays):
        row.status = EmailStatus.FAILED
        kind = "email_failed"
    else:
        row.next_attempt_at = now + timedelta(seconds=delays[row.attempts - 1])
        kind = "email_retrying"
    row.save(update_fields=["attempts", "last_error", "status", "next_attempt_at", "refused", "updated_at"])
    _timeline(
        invoice_ids,
        kind,
        "system:email",
        {"email_id": str(row.pk), "error": row.last_error, "attempts": row.attempts, "refused": row.refused},
    )


def _decode(message: bytes | str) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def document_email_send(*, email_id: Any) -> DocumentEmail | None:
    """Send one pending message (the task's body; idempotent: a sent row is left alone, and a row
    another worker is sending is skipped)."""
    now = timezone.now()
    with transaction.atomic():
        row = DocumentEmail.objects.select_for_update(skip_locked=True).filter(pk=email_id).first()
        if row is None or row.status != EmailStatus.PENDING:
            return row
        fallback_ids = [row.invoice_id] if row.invoice_id else []
        try:
            message = document_message(row.document_type, row.document_id)
        except Exception as error:  # a PDF that cannot be rendered now: retried later
            logger.exception("e-mail %s: the %s could not be rendered", row.pk, row.document_type)
            _record_failure(row, f"render: {error}", now=now, permanent=False, invoice_ids=fallback_ids)
            return row
        if message is None:
            _record_failure(row, "the document no longer exists", now=now, permanent=True, invoice_ids=fallback_ids)
            return row
        organization = Organization.current()
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=row.to,
            cc=row.cc,
            bcc=row.bcc,
            reply_to=[organization.email] if organization.email else None,
            headers={"Message-ID": row.message_id or make_msgid(domain="tollgate"), "X-Tollgate-Email": str(row.pk)},
        )
        email.attach_alternative(message.html, "text/html")
        for filename, data, mimetype in message.attachments:
            email.attach(filename, data, mimetype)
        row.subject = message.subject[:255]
        row.message_id = email.extra_headers["Message-ID"]
        connection = get_connection(fail_silently=False)
        try:
            connection.send_messages([email])
        except smtplib.SMTPRecipientsRefused as error:
            row.refused = {address: f"{code} {_decode(text)}" for address, (code, text) in error.recipients.items()}
            _record_failure(
                row, "every recipient was refused", now=now, permanent=True, invoice_ids=message.invoice_ids
            )
            return row
        except smtplib.SMTPResponseException as error:
            text = f"{error.smtp_code} {_decode(error.smtp_error)}"
            temporary = 400 <= error.smtp_code < 500
            _record_failure(row, text, now=now, permanent=not temporary, invoice_ids=message.invoice_ids)
            return row
        except (smtplib.SMTPException, OSError) as error:
            _record_failure(
                row, f"{type(error).__name__}: {error}", now=now, permanent=False, invoice_ids=message.invoice_ids
            )
            return row
        refused = getattr(connection, "refused", {}) or {}
        row.refused = {address: f"{code} {_decode(text)}" for address, (code, text) in refused.items()}
        row.status = EmailStatus.SENT
        row.attempts += 1
        row.sent_at = timezone.now()
        row.last_error = ""
        row.save()
        _timeline(
            message.invoice_ids,
            "email_sent",
            "system:email",
            {
                "email_id": str(row.pk),
                "subject": row.subject,
                "to": row.to,
                "cc": row.cc,
                "bcc": row.bcc,
                "refused": row.refused,
                "message_id": row.message_id,
            },
        )
    return row


def document_emails_due(*, now: datetime) -> list[Any]:
    """Pending messages whose task was lost or whose retry is due, oldest first."""
    return list(
        DocumentEmail.objects.filter(status=EmailStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
