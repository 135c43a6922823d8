"""Feature and entitlement changes with Lago's rules and codes (lago-api app/services/entitlement/*),
and what a subscription is entitled to (its plan's grants, its own overrides, minus removals)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from billing_project.errors import DomainError, NotFoundError
from plans.models import Plan, Subscription
from plans.signals import feature_deleted_in_tx, feature_saved_in_tx, plan_entitlements_changed_in_tx

from .models import Entitlement, EntitlementRemoval, EntitlementValue, Feature, Privilege, PrivilegeValueType

MAX_CODE_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 600
# Rails' boolean cast: these read as false, any other non-empty value as true.
_FALSE_TEXTS = {"false", "f", "0", "off", "no", "n"}


class EntitlementValidationError(DomainError):
    """Refused with Lago's {field: [code]} details; nothing was written."""


def _refuse(field: str, code: str) -> EntitlementValidationError:
    return EntitlementValidationError({field: [code]})


# --- announcements (webhooks: feature.created/updated/deleted, plan.updated), in the transaction


def _granting_plan_ids(feature: Feature) -> list[Any]:
    return list(Entitlement.objects.filter(feature=feature, plan__isnull=False).values_list("plan_id", flat=True))


def _plans_changed(plan_ids: Sequence[Any]) -> None:
    if plan_ids:
        plan_entitlements_changed_in_tx.send(sender=Plan, plan_ids=sorted(set(plan_ids), key=str))


def _feature_saved(feature: Feature, *, created: bool) -> None:
    """feature.created or feature.updated, and plan.updated for each plan granting it (Lago's
    Entitlement::FeatureCreateService / FeatureUpdateService / PrivilegeDestroyService)."""
    feature_saved_in_tx.send(sender=Feature, feature_id=feature.pk, created=created)
    if not created:
        _plans_changed(_granting_plan_ids(feature))


# --- features ---------------------------------------------------------------------------------


def _checked_privileges(privileges: Any) -> list[Mapping[str, Any]]:
    if privileges is None:
        return []
    if not isinstance(privileges, list) or not all(isinstance(p, Mapping) for p in privileges):
        raise _refuse("privileges", "value_is_invalid")
    codes = [p.get("code") for p in privileges]
    if len(codes) != len(set(map(str, codes))):
        raise _refuse("privilege.code", "value_is_duplicated")
    return privileges


def _check_config(value_type: str, config: Any) -> None:
    """Lago's Privilege#config_valid?: a select lists its options, the other types have none."""
    if value_type == PrivilegeValueType.SELECT:
        options = config.get("select_options") if isinstance(config, Mapping) else None
        valid = (
            isinstance(config, Mapping)
            and list(config) == ["select_options"]
            and isinstance(options, list)
            and bool(options)
            and all(isinstance(option, str) for option in options)
        )
    else:
        valid = not config
    if not valid:
        raise _refuse("privilege.config", "invalid_format")


def _new_privilege(feature: Feature, params: Mapping[str, Any]) -> Privilege:
    code = params.get("code")
    if not isinstance(code, str) or not code.strip():
        raise _refuse("privilege.code", "value_is_mandatory")
    if len(code) > MAX_CODE_LENGTH:
        raise _refuse("privilege.code", "value_is_invalid")
    name = params.get("name") or ""
    if not isinstance(name, str) or len(name) > MAX_CODE_LENGTH:
        raise _refuse("privilege.name", "value_is_invalid")
    value_type = params.get("value_type") or PrivilegeValueType.STRING
    if value_type not in PrivilegeValueType.values:
        raise _refuse("privilege.value_type", "value_is_invalid")
    config = params.get("config") or {}
    _check_config(value_type, config)
    return Privilege.objects.create(feature=feature, code=code.strip(), name=name, value_type=value_type, config=config)


def _check_text(field: str, value: Any, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise _refuse(field, "value_is_invalid")
    return value


def feature_create(*, code: Any, name: Any = None, description: Any = None, privileges: Any = None) -> Feature:
    if not isinstance(code, str) or not code.strip():
        raise _refuse("code", "value_is_mandatory")
    if len(code) > MAX_CODE_LENGTH:
        raise _refuse("code", "value_is_invalid")
    name = _check_text("name", name, MAX_CODE_LENGTH)
    description = _check_text("description", description, MAX_DESCRIPTION_LENGTH)
    privileges = _checked_privileges(privileges)
    try:
        with transaction.atomic():
            feature = Feature.objects.create(code=code.strip(), name=name, description=description)
            for params in privileges:
                _new_privilege(feature, params)
            _feature_saved(feature, created=True)
    except IntegrityError as error:
        raise _refuse("code", "value_already_exist") from error
    return feature


def feature_update(*, feature: Feature, changes: Mapping[str, Any]) -> Feature:
    """Lago's partial update: name and description when given; privileges matched by code are
    renamed (a select gains the new options), unknown codes are created; none is removed."""
    privileges = _checked_privileges(changes.get("privileges"))
    with transaction.atomic():
        if "name" in changes:
            feature.name = _check_text("name", changes["name"], MAX_CODE_LENGTH)
        if "description" in changes:
            feature.description = _check_text("description", changes["description"], MAX_DESCRIPTION_LENGTH)
        feature.save()
        existing = {privilege.code: privilege for privilege in feature.privileges.all()}
        for params in privileges:
            privilege = existing.get(params.get("code"))  # type: ignore[arg-type]  # a missing code is refused below
            if privilege is None:
                _new_privilege(feature, params)
                continue
            if "name" in params:
                privilege.name = _check_text("privilege.name", params["name"], MAX_CODE_LENGTH)
            options = (params.get("config") or {}).get("select_options")
            if privilege.value_type == PrivilegeValueType.SELECT and isinstance(options, list):
                known = list(privilege.config.get("select_options", []))
                privilege.config = {"select_options": known + [o for o in options if o not in known]}
                _check_config(privilege.value_type, privilege.config)
            privilege.save()
        _feature_saved(feature, created=False)
    return feature


def feature_delete(*, feature: Feature) -> Feature:
    """Removes the feature with its privileges and every grant of it (cascade)."""
    with transaction.atomic():
        privileges = list(feature.privileges.all())
        plan_ids = _granting_plan_ids(feature)
        feature_deleted_in_tx.send(sender=Feature, feature_id=feature.pk)  # rendered before it goes
        feature.delete()
        _plans_changed(plan_ids)
    feature.deleted_privileges = privileges  # type: ignore[attr-defined]  # the answer lists them
    return feature


def feature_save(
    *,
    feature: Feature | None,
    code: Any = None,
    name: Any = None,
    description: Any = None,
    privileges: Sequence[Mapping[str, Any]] = (),
    removed_privilege_codes: Sequence[str] = (),
) -> Feature:
    """The console's save of a feature page, in one transaction: a new feature with its
    privileges (feature_create), or an existing one changed (feature_update) after the privileges
    ticked for deletion went; one feature.created or feature.updated either way."""
    if feature is None:
        return feature_create(code=code, name=name, description=description, privileges=list(privileges))
    with transaction.atomic():
        for privilege_code in removed_privilege_codes:
            if not Privilege.objects.filter(feature=feature, code=privilege_code).delete()[0]:
                raise NotFoundError("privilege")
        return feature_update(
            feature=feature, changes={"name": name, "description": description, "privileges": list(privileges)}
        )


def privilege_delete(*, feature: Feature, code: str) -> Feature:
    with transaction.atomic():
        plan_ids = list(
            EntitlementValue.objects.filter(
                privilege__feature=feature, privilege__code=code, entitlement__plan__isnull=False
            ).values_list("entitlement__plan_id", flat=True)
        )
        deleted, _ = Privilege.objects.filter(feature=feature, code=code).delete()
        if not deleted:
            raise NotFoundError("privilege")
        feature_saved_in_tx.send(sender=Feature, feature_id=feature.pk, created=False)
        _plans_changed(plan_ids)
    return feature


# --- values -----------------------------------------------------------------------------------


def _stored_value(privilege: Privilege, value: Any) -> str:
    """Lago's CreateOrUpdateConcern#validate_value, kept as text."""
    field = f"{privilege.code}_privilege_value"
    kind = privilege.value_type
    if kind == PrivilegeValueType.SELECT:
        if isinstance(value, str) and value in privilege.config.get("select_options", []):
            return value
        raise _refuse(field, "value_not_in_select_options")
    if kind == PrivilegeValueType.BOOLEAN and value in (True, False, "true", "false"):
        return "true" if value in (True, "true") else "false"
    if kind == PrivilegeValueType.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.lstrip("-").isdigit() and str(int(value)) == value:
            return value
    if kind == PrivilegeValueType.STRING and isinstance(value, str):
        return value
    raise _refuse(field, "value_is_invalid")


def cast_value(text: str | None, value_type: str) -> Any:
    """Lago's Utils::Entitlement.cast_value."""
    if text is None:
        return None
    if value_type == PrivilegeValueType.INTEGER:
        return int(text)
    if value_type == PrivilegeValueType.BOOLEAN:
        return text.lower() not in _FALSE_TEXTS
    return text


def _features(codes: Sequence[str]) -> dict[str, Feature]:
    features = {f.code: f for f in Feature.objects.filter(code__in=codes).prefetch_related("privileges")}
    if len(features) != len(set(codes)):
        raise NotFoundError("feature")
    return features


def _privilege(feature: Feature, code: str) -> Privilege:
    for privilege in feature.privileges.all():
        if privilege.code == code:
            return privilege
    raise NotFoundError("privilege")


def _grants(params: Any) -> dict[str, dict[str, Any]]:
    """{feature_code: {privilege_code: value}}; a feature may come with no privileges (on/off)."""
    if not isinstance(params, Mapping):
        raise _refuse("entitlements", "value_is_invalid")
    grants: dict[str, dict[str, Any]] = {}
    for code, values in params.items():
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise _refuse("entitlements", "value_is_invalid")
        grants[str(code)] = dict(values)
    return grants


def _set_values(entitlement: Entitlement, feature: Feature, values: Mapping[str, Any]) -> None:
    for code, value in values.items():
        privilege = _privilege(feature, code)
        EntitlementValue.objects.update_or_create(
            entitlement=entitlement, privilege=privilege, defaults={"value": _stored_value(privilege, value)}
        )


# --- plans ------------------------------------------------------------------------------------


def plan_entitlements_update(*, plan: Plan, entitlements: Any, partial: bool) -> Plan:
    """POST (partial=False: the plan grants exactly these) or PATCH (partial: these change, the
    rest stays), as Lago's PlanEntitlementsUpdateService."""
    grants = _grants(entitlements)
    with transaction.atomic():
        features = _features(list(grants))
        if not partial:
            Entitlement.objects.filter(plan=plan).exclude(feature__code__in=list(grants)).delete()
        for code, values in grants.items():
            feature = features[code]
            entitlement, created = Entitlement.objects.get_or_create(plan=plan, feature=feature)
            if not created and not partial:
                entitlement.values.exclude(privilege__code__in=list(values)).delete()
            _set_values(entitlement, feature, values)
        _plans_changed([plan.pk])
    return plan


def plan_entitlement_delete(*, plan: Plan, feature_code: str) -> Entitlement:
    entitlement = plan_entitlement(plan=plan, feature_code=feature_code)
    answer = _plan_grant(entitlement)
    with transaction.atomic():
        entitlement.delete()
        _plans_changed([plan.pk])
    entitlement.answer = answer  # type: ignore[attr-defined]  # what the plan granted, for the answer
    return entitlement


def plan_entitlement_privilege_delete(*, plan: Plan, feature_code: str, privilege_code: str) -> Entitlement:
    entitlement = plan_entitlement(plan=plan, feature_code=feature_code)
    with transaction.atomic():
        deleted, _ = entitlement.values.filter(privilege__code=privilege_code).delete()
        if not deleted:
            raise NotFoundError("privilege")
        _plans_changed([plan.pk])
    return plan_entitlement(plan=plan, feature_code=feature_code)


def plan_entitlement(*, plan: Plan, feature_code: str) -> Entitlement:
    entitlement = (
        Entitlement.objects.filter(plan=plan, feature__code=feature_code)
        .select_related("feature")
        .prefetch_related("values__privilege")
        .first()
    )
    if entitlement is None:
        raise NotFoundError("entitlement")
    return entitlement


def plan_entitlements(*, plan: Plan) -> list[Entitlement]:
    return list(Entitlement.objects.filter(plan=plan).select_related("feature").prefetch_related("values__privilege"))


def _plan_grant(entitlement: Entitlement) -> dict[str, Any]:
    feature = entitlement.feature
    values = sorted(entitlement.values.all(), key=lambda v: (v.privilege.created_at, str(v.privilege.id)))
    return {
        "code": feature.code,
        "name": feature.name or None,
        "description": feature.description or None,
        "privileges": [
            {
                "code": v.privilege.code,
                "name": v.privilege.name or None,
                "value_type": v.privilege.value_type,
                "value": cast_value(v.value, v.privilege.value_type),
                "config": v.privilege.config or {},
            }
            for v in values
        ],
    }


def serialize_plan_entitlement(entitlement: Entitlement) -> dict[str, Any]:
    return getattr(entitlement, "answer", None) or _plan_grant(entitlement)


# --- subscriptions ------------------------------------------------------------------------------


def _granting_plan(subscription: Subscription) -> Plan:
    """Overrides are child plans of the plan (Lago's plans.parent_id): grants are the parent's."""
    plan = subscription.plan
    return getattr(plan, "parent", None) or plan


@dataclass
class _Effective:
    feature: Feature
    plan_values: dict[str, EntitlementValue]
    own_values: dict[str, EntitlementValue]


def _effective(subscription: Subscription) -> list[_Effective]:
    plan = _granting_plan(subscription)
    plan_rows = list(
        Entitlement.objects.filter(plan=plan).select_related("feature").prefetch_related("values__privilege")
    )
    own_rows = list(
        Entitlement.objects.filter(subscription=subscription)
        .select_related("feature")
        .prefetch_related("values__privilege")
    )
    removals = list(EntitlementRemoval.objects.filter(subscription=subscription).values_list("feature", "privilege"))
    removed_features = {feature for feature, _ in removals if feature}
    removed_privileges = {privilege for _, privilege in removals if privilege}
    merged: dict[Any, _Effective] = {}
    for entitlement in plan_rows:
        if entitlement.feature_id in removed_features:
            continue
        merged[entitlement.feature_id] = _Effective(
            entitlement.feature,
            {v.privilege.code: v for v in entitlement.values.all() if v.privilege_id not in removed_privileges},
            {},
        )
    for entitlement in own_rows:
        effective = merged.setdefault(entitlement.feature_id, _Effective(entitlement.feature, {}, {}))
        effective.own_values = {v.privilege.code: v for v in entitlement.values.all()}
    return list(merged.values())


def subscription_entitlements(*, subscription: Subscription) -> list[dict[str, Any]]:
    """What the subscription may use: per feature, each privilege's value (its own override, else
    the plan's), as Lago's SubscriptionEntitlementSerializer answers it."""
    answer = []
    for effective in _effective(subscription):
        codes = {**effective.plan_values, **effective.own_values}
        values = sorted(codes.values(), key=lambda v: (v.privilege.created_at, str(v.privilege.id)))
        privileges = []
        overrides: dict[str, Any] = {}
        for value in values:
            privilege = value.privilege
            plan_value = effective.plan_values.get(privilege.code)
            own_value = effective.own_values.get(privilege.code)
            kind = privilege.value_type
            own = cast_value(own_value.value, kind) if own_value else None
            if own_value:
                overrides[privilege.code] = own
            privileges.append(
                {
                    "code": privilege.code,
                    "name": privilege.name or None,
                    "value_type": kind,
                    "value": own if own_value else cast_value(plan_value.value if plan_value else None, kind),
                    "plan_value": cast_value(plan_value.value, kind) if plan_value else None,
                    "override_value": own,
                    "config": privilege.config or {},
                }
            )
        feature = effective.feature
        answer.append(
            {
                "code": feature.code,
                "name": feature.name or None,
                "description": feature.description or None,
                "privileges": privileges,
                "overrides": overrides,
            }
        )
    return answer


def subscription_entitlements_update(*, subscription: Subscription, entitlements: Any) -> Subscription:
    """PATCH: per feature, values equal to the plan's drop the override; others override it (Lago's
    SubscriptionEntitlementCoreUpdateService, partial)."""
    grants = _grants(entitlements)
    plan = _granting_plan(subscription)
    with transaction.atomic():
        features = _features(list(grants))
        for code, values in grants.items():
            feature = features[code]
            plan_entitlement = (
                Entitlement.objects.filter(plan=plan, feature=feature).prefetch_related("values__privilege").first()
            )
            plan_values = {v.privilege.code: v.value for v in plan_entitlement.values.all()} if plan_entitlement else {}
            stored = {c: _stored_value(_privilege(feature, c), v) for c, v in values.items()}
            privilege_ids = [p.id for p in feature.privileges.all()]
            if plan_entitlement is not None and stored == plan_values:
                Entitlement.objects.filter(subscription=subscription, feature=feature).delete()
                EntitlementRemoval.objects.filter(subscription=subscription, feature=feature).delete()
                EntitlementRemoval.objects.filter(subscription=subscription, privilege__in=privilege_ids).delete()
                continue
            EntitlementRemoval.objects.filter(subscription=subscription, feature=feature).delete()
            own, _ = Entitlement.objects.get_or_create(subscription=subscription, feature=feature)
            for privilege_code, text in stored.items():
                privilege = _privilege(feature, privilege_code)
                EntitlementRemoval.objects.filter(subscription=subscription, privilege=privilege).delete()
                if plan_values.get(privilege_code) == text:
                    own.values.filter(privilege=privilege).delete()
                else:
                    EntitlementValue.objects.update_or_create(
                        entitlement=own, privilege=privilege, defaults={"value": text}
                    )
    return subscription


def subscription_feature_remove(*, subscription: Subscription, feature_code: str) -> Subscription:
    """DELETE /subscriptions/{id}/entitlements/{code}: the subscription does without the feature."""
    feature = Feature.objects.filter(code=feature_code).first()
    if feature is None:
        raise NotFoundError("feature")
    with transaction.atomic():
        Entitlement.objects.filter(subscription=subscription, feature=feature).delete()
        EntitlementRemoval.objects.filter(subscription=subscription, privilege__feature=feature).delete()
        if Entitlement.objects.filter(plan=_granting_plan(subscription), feature=feature).exists():
            EntitlementRemoval.objects.bulk_create(
                [EntitlementRemoval(subscription=subscription, feature=feature)], ignore_conflicts=True
            )
    return subscription


def subscription_privilege_remove(
    *, subscription: Subscription, feature_code: str, privilege_code: str
) -> Subscription:
    """DELETE .../entitlements/{code}/privileges/{code}: its override goes, and so does the plan's
    value for this subscription."""
    feature = Feature.objects.filter(code=feature_code).prefetch_related("privileges").first()
    if feature is None:
        raise NotFoundError("feature")
    privilege = _privilege(feature, privilege_code)
    with transaction.atomic():
        EntitlementValue.objects.filter(entitlement__subscription=subscription, privilege=privilege).delete()
        if EntitlementValue.objects.filter(
            entitlement__plan=_granting_plan(subscription), privilege=privilege
        ).exists():
            EntitlementRemoval.objects.bulk_create(
                [EntitlementRemoval(subscription=subscription, privilege=privilege)], ignore_conflicts=True
            )
    return subscription


def serialize_feature(feature: Feature) -> dict[str, Any]:
    privileges = getattr(feature, "deleted_privileges", None)
    if privileges is None:
        privileges = list(feature.privileges.all())
    return {
        "code": feature.code,
        "name": feature.name or None,
        "description": feature.description or None,
        "privileges": [
            {"code": p.code, "name": p.name or None, "value_type": p.value_type, "config": p.config or {}}
            for p in privileges
        ],
        "created_at": feature.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
