"""The e-mail outbox in the admin (read-only): each message, its status, refusals and errors."""

from __future__ import annotations

from django.contrib import admin

from billing_project.admin import ReadOnlyAdmin

from .models import DocumentEmail


@admin.register(DocumentEmail)
class DocumentEmailAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "document_type", "reason", "recipients", "status", "attempts", "sent_at"]
    list_filter = ["status", "document_type", "reason"]
    search_fields = ["=document_id", "=invoice__id", "invoice__number", "subject"]
    list_select_related = ["invoice"]
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "document_type",
        "document_id",
        "invoice",
        "reason",
        "to",
        "cc",
        "bcc",
        "status",
        "attempts",
        "next_attempt_at",
        "subject",
        "message_id",
        "refused",
        "last_error",
        "actor",
        "sent_at",
        "created_at",
    )
    fields = readonly_fields

    @admin.display(description="to")
    def recipients(self, email: DocumentEmail) -> str:
        return ", ".join(email.to)
