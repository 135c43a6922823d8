"""One row per API request (Lago's api_logs): kept TOLLGATE_API_LOG_RETENTION_DAYS, then pruned."""

from __future__ import annotations

import uuid

from django.db import models

from customers.models import ApiKey


class ApiLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # The key's name when the request was made (a key renamed later keeps its old requests' name).
    api_key_name = models.CharField(max_length=255, blank=True)
    client = models.CharField(max_length=255, blank=True, help_text="The User-Agent header")
    http_method = models.CharField(max_length=8)
    http_status = models.PositiveSmallIntegerField()
    request_origin = models.CharField(max_length=255, blank=True)
    request_path = models.CharField(max_length=2048)
    api_version = models.CharField(max_length=8, default="v1")
    duration_ms = models.PositiveIntegerField(default=0)
    # Secrets redacted (audit.redact): the query of a read, the body of a write, and a write's answer.
    request_body = models.JSONField(default=dict, blank=True)
    request_response = models.JSONField(null=True, blank=True)
    logged_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-logged_at", "-id"]
        verbose_name = "API log"

    def __str__(self) -> str:
        return f"{self.http_method} {self.request_path} {self.http_status}"
