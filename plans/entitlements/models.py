"""Features, their privileges, and what plans and subscriptions grant of them (Lago's
app/models/entitlement/*). Values are kept as text and cast by the privilege's value_type."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from plans.models import Plan, Subscription


class PrivilegeValueType(models.TextChoices):
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"
    SELECT = "select"


class Feature(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.code


class Privilege(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="privileges")
    code = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    value_type = models.CharField(max_length=16, choices=PrivilegeValueType.choices, default=PrivilegeValueType.STRING)
    # {"select_options": [...]} for a select; empty otherwise.
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["feature", "code"], name="privilege_code_unique_per_feature")]

    def __str__(self) -> str:
        return f"{self.feature_id}:{self.code}"


class Entitlement(models.Model):
    """A feature granted by a plan, or by one subscription on top of (or instead of) its plan."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="entitlements")
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, null=True, blank=True, related_name="entitlements")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, null=True, blank=True, related_name="entitlements"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(plan__isnull=False, subscription__isnull=True)
                | Q(plan__isnull=True, subscription__isnull=False),
                name="entitlement_of_a_plan_or_a_subscription",
            ),
            models.UniqueConstraint(
                fields=["plan", "feature"], condition=Q(plan__isnull=False), name="entitlement_once_per_plan"
            ),
            models.UniqueConstraint(
                fields=["subscription", "feature"],
                condition=Q(subscription__isnull=False),
                name="entitlement_once_per_subscription",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature_id} for {self.plan_id or self.subscription_id}"


class EntitlementValue(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entitlement = models.ForeignKey(Entitlement, on_delete=models.CASCADE, related_name="values")
    privilege = models.ForeignKey(Privilege, on_delete=models.CASCADE, related_name="entitlement_values")
    value = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entitlement", "privilege"], name="entitlement_value_once_per_privilege")
        ]

    def __str__(self) -> str:
        return f"{self.privilege_id}={self.value}"


class EntitlementRemoval(models.Model):
    """A subscription that does without a feature (or one privilege) its plan grants."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="entitlement_removals")
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    privilege = models.ForeignKey(Privilege, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(feature__isnull=False, privilege__isnull=True)
                | Q(feature__isnull=True, privilege__isnull=False),
                name="entitlement_removal_of_a_feature_or_a_privilege",
            ),
            models.UniqueConstraint(
                fields=["subscription", "feature"],
                condition=Q(feature__isnull=False),
                name="feature_removed_once_per_subscription",
            ),
            models.UniqueConstraint(
                fields=["subscription", "privilege"],
                condition=Q(privilege__isnull=False),
                name="privilege_removed_once_per_subscription",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} without {self.feature_id or self.privilege_id}"
