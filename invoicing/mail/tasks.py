"""Celery tasks of the e-mail outbox: thin, idempotent (a sent row is never sent again)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import services


@shared_task(name="invoicing.mail.tasks.send_document_email")
def send_document_email(email_id: str) -> str | None:
    row = services.document_email_send(email_id=email_id)
    return row.status if row is not None else None


@shared_task(name="invoicing.mail.tasks.send_due_document_emails")
def send_due_document_emails() -> dict[str, int]:
    """Every 2 minutes: messages whose task was lost, and retries that are due."""
    due = services.document_emails_due(now=timezone.now())
    for email_id in due:
        services.document_email_send(email_id=email_id)
    return {"due": len(due)}
