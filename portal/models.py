"""The customer portal's one table: which generation of portal links a customer's are.

A link carries the customer's id and the `version` it was signed with; revoking a customer's
links bumps the version, so every link signed before stops working at once (a signature cannot
be recalled, a version can)."""

from __future__ import annotations

from django.db import models

from customers.models import Customer


class PortalAccess(models.Model):
    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, primary_key=True, related_name="portal_access")
    version = models.PositiveIntegerField(default=1)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "customer portal access"
        verbose_name_plural = "customer portal access"

    def __str__(self) -> str:
        return f"{self.customer} v{self.version}"
