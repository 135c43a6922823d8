"""Every state change of webhooks: endpoints (create, update, delete, rotate the secret), the
outbox (`webhook_emit`, inside the caller's transaction), and delivery (`endpoint_drain`: one
endpoint's pending deliveries, oldest first, one HTTP attempt each, retried with backoff).

Delivery is at least once: the attempt runs while the endpoint row is locked (FOR NO KEY UPDATE,
which does not block the outbox inserts that reference it); a worker killed mid-attempt rolls back
its attempt row and the delivery is sent again. Receivers deduplicate on X-Lago-Unique-Key.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import urllib3
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from customers.models import Organization

from . import keys, signing, urlguard
from .models import MAX_ENDPOINTS, DeliveryStatus, SignatureAlgo, WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

ROTATION_OVERLAP = timedelta(hours=24)
RESPONSE_EXCERPT_BYTES = 2048
USER_AGENT = "Tollgate-Webhooks/1"


class WebhookError(Exception):
    """A refused endpoint change; `field` and `code` are the API's validation error."""

    def __init__(self, code: str, *, field: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.field = field


# --- endpoints ----------------------------------------------------------------------------------


def webhook_url_check(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise WebhookError("value_is_mandatory", field="webhook_url")
    if len(url) > 1024:
        raise WebhookError("url_is_invalid", field="webhook_url")
    try:
        urlguard.resolve(url)
    except urlguard.RefusedURL as refused:
        raise WebhookError(refused.code, field="webhook_url")
    return url


def _check_algo(algo: Any) -> str:
    if algo not in SignatureAlgo.values:
        raise WebhookError("value_is_invalid", field="signature_algo")
    return str(algo)


def event_types_check(event_types: Any) -> list[str] | None:
    from .events import webhook_types

    if event_types is None:
        return None
    known = set(webhook_types())
    if not isinstance(event_types, list) or not all(isinstance(t, str) and t in known for t in event_types):
        raise WebhookError("value_is_invalid", field="event_types")
    return list(dict.fromkeys(event_types))


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    signing_secret: str  # shown once


@transaction.atomic
def webhook_endpoint_create(
    *, webhook_url: Any, signature_algo: Any = None, name: Any = None, event_types: Any = None
) -> CreatedEndpoint:
    # Lock the organization row: two concurrent creations cannot both pass the limit.
    Organization.objects.select_for_update().filter(id=Organization.current().id).first()
    if WebhookEndpoint.objects.count() >= MAX_ENDPOINTS:
        raise WebhookError("webhook_endpoints_limit_reached")
    url = webhook_url_check(webhook_url)
    if WebhookEndpoint.objects.filter(webhook_url=url).exists():
        raise WebhookError("value_already_exist", field="webhook_url")
    secret = keys.new_signing_secret()
    endpoint = WebhookEndpoint.objects.create(
        webhook_url=url,
        signature_algo=_check_algo(signature_algo or SignatureAlgo.JWT),
        name=str(name or "")[:255],
        event_types=event_types_check(event_types),
        signing_secret_encrypted=keys.encrypt(secret),
    )
    return CreatedEndpoint(endpoint=endpoint, signing_secret=secret)


_UNSET: Any = object()


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    webhook_url: Any = _UNSET,
    signature_algo: Any = _UNSET,
    name: Any = _UNSET,
    event_types: Any = _UNSET,
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if webhook_url is not _UNSET and webhook_url != endpoint.webhook_url:
        url = webhook_url_check(webhook_url)
        if WebhookEndpoint.objects.filter(webhook_url=url).exclude(pk=endpoint.pk).exists():
            raise WebhookError("value_already_exist", field="webhook_url")
        endpoint.webhook_url = url
    if signature_algo is not _UNSET and signature_algo is not None:
        endpoint.signature_algo = _check_algo(signature_algo)
    if name is not _UNSET:
        endpoint.name = str(name or "")[:255]
    if event_types is not _UNSET:
        endpoint.event_types = event_types_check(event_types)
    endpoint.save()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Deleting an endpoint drops its deliveries and their attempts (as Lago does)."""
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> str:
    """A new signing secret, returned once; the old one still signs for ROTATION_OVERLAP."""
    now = now or timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = keys.new_signing_secret()
    endpoint.previous_signing_secret_encrypted = endpoint.signing_secret_encrypted
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.signing_secret_encrypted = keys.encrypt(secret)
    endpoint.save()
    return secret


def live_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets Tollgate-Signature is computed with, newest first."""
    secrets = [keys.decrypt(endpoint.signing_secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_signing_secret_encrypted and expires is not None and expires > now:
        secrets.append(keys.decrypt(endpoint.previous_signing_secret_encrypted))
    return secrets


# --- the outbox ---------------------------------------------------------------------------------


def endpoints_wanting(webhook_type: str) -> list[WebhookEndpoint]:
    return [endpoint for endpoint in transaction_endpoints() if endpoint.wants(webhook_type)]


# The endpoints are read once per transaction: a billing change that announces several things
# (an invoice finalized with its wallet consumption, ...) reads them once, not once per
# announcement. The cache lives on the connection and is tied to the caller's own transaction:
# - a real transaction (the outermost atomic block): a marker callback registered with on_commit,
#   valid while it sits where it was put in the connection's on_commit list (commit runs and
#   empties that list, a rollback empties it, a rolled-back savepoint drops what it registered);
# - under a test case's transaction: the savepoint of the first block that is not the test
#   case's (what the code under test sees as its transaction), and the test's own outer block.
# Outside a transaction, every call reads. Saving or deleting an endpoint drops the cache.
_CACHE_ATTR = "_tollgate_webhook_endpoints"


@dataclass
class _EndpointsCache:
    token: tuple[Any, ...]
    endpoints: list[WebhookEndpoint]


def _transaction_token(connection: Any) -> tuple[Any, ...] | None:
    if not connection.in_atomic_block:
        return None
    blocks = connection.atomic_blocks
    own = next((i for i, block in enumerate(blocks) if not getattr(block, "_from_testcase", False)), None)
    if own is None:
        return None
    if own == 0:
        return ("transaction",)
    sid = connection.savepoint_ids[own - 1] if len(connection.savepoint_ids) >= own else None
    return None if sid is None else ("savepoint", blocks[0], own, sid)


def _valid(connection: Any, cache: _EndpointsCache | None, token: tuple[Any, ...]) -> bool:
    if cache is None or cache.token[0] != token[0]:
        return False
    if token[0] == "savepoint":
        _, outer, own, sid = cache.token
        return outer is token[1] and own == token[2] and sid == token[3]
    _, marker, index = cache.token
    pending = connection.run_on_commit
    return len(pending) > index and pending[index][1] is marker


def transaction_endpoints() -> list[WebhookEndpoint]:
    """Every endpoint, read once per transaction of the caller's (see above)."""
    connection = transaction.get_connection()
    token = _transaction_token(connection)
    if token is None:
        return list(WebhookEndpoint.objects.all())
    cache = getattr(connection, _CACHE_ATTR, None)
    if _valid(connection, cache, token):
        return cache.endpoints  # type: ignore[union-attr]
    endpoints = list(WebhookEndpoint.objects.all())
    if token[0] == "transaction":

        def marker() -> None:
            return None

        index = len(connection.run_on_commit)
        connection.on_commit(marker)
        token = ("transaction", marker, index)
    setattr(connection, _CACHE_ATTR, _EndpointsCache(token=token, endpoints=endpoints))
    return endpoints


def endpoints_cache_clear(**kwargs: Any) -> None:
    """post_save / post_delete of an endpoint: the next emission reads the endpoints again."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if hasattr(connection, _CACHE_ATTR):
            delattr(connection, _CACHE_ATTR)


def webhook_emit(
    *,
    webhook_type: str,
    object_type: str,
    object_id: Any,
    payload: Callable[[], dict[str, Any]] | dict[str, Any],
    endpoints: list[WebhookEndpoint] | None = None,
    event_key: str | None = None,
) -> list[WebhookDelivery]:
    """Write one pending delivery per endpoint that wants `webhook_type`, in the CALLER's
    transaction, and send their endpoints' delivery tasks once it commits. `payload` (the object)
    is rendered only when some endpoint wants it; the body is frozen here. `endpoints`: the ones
    wanting it, when the caller has read them already. `event_key`: a scheduled announcement's
    own key; a delivery of that event to that endpoint that exists already is left as it is (the
    database's unique constraint decides, so two racing runs write it once)."""
    if endpoints is None:
        endpoints = endpoints_wanting(webhook_type)
    if not endpoints:
        return []
    organization = Organization.current()
    data = payload() if callable(payload) else payload
    body = json.dumps(
        {
            "webhook_type": webhook_type,
            "object_type": object_type,
            "organization_id": str(organization.lago_id),
            object_type: data,
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )
    now = timezone.now()
    key = event_key or uuid.uuid4().hex
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                event_key=key,
                webhook_type=webhook_type,
                object_type=object_type,
                object_id=str(object_id or "")[:64],
                body=body,
                next_attempt_at=now,
                created_at=now,
            )
            for endpoint in endpoints
        ],
        ignore_conflicts=event_key is not None,
    )
    endpoint_ids = [str(endpoint.pk) for endpoint in endpoints]
    transaction.on_commit(lambda: _enqueue(endpoint_ids), robust=True)
    return deliveries


def _enqueue(endpoint_ids: Iterable[str], countdown: float | None = None) -> None:
    """Send the delivery tasks; never raises (a lost task delays a delivery, the sweep sends it)."""
    from .tasks import deliver_endpoint

    for endpoint_id in endpoint_ids:
        try:
            if countdown is None:
                # No publish retries: with the broker down the caller moves on, the sweep delivers.
                deliver_endpoint.apply_async((endpoint_id,), retry=False)
            elif not deliver_endpoint.app.conf.task_always_eager:
                # Eager (no broker): a delayed retry would run at once; the sweep sends it when due.
                deliver_endpoint.apply_async((endpoint_id,), countdown=countdown, retry=False)
        except Exception:
            logger.warning("webhooks: could not send the delivery task of endpoint %s", endpoint_id, exc_info=True)


# --- delivery -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None
    response_excerpt: str
    error: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Signer:
    """Lago's X-Lago-Signature; reads its keys once (one drain: many deliveries)."""

    def __init__(self) -> None:
        self._hmac_key: str | None = None
        self._private_key: Any = None

    def sign(self, body: str, algo: str) -> str:
        if algo == SignatureAlgo.HMAC:
            if self._hmac_key is None:
                self._hmac_key = Organization.current().hmac_key
            return signing.lago_hmac_signature(body, hmac_key=self._hmac_key)
        if self._private_key is None:
            self._private_key = keys.signing_private_key()
        return signing.lago_jwt_signature(body, private_key=self._private_key, issuer=settings.TOLLGATE_PUBLIC_URL)


def delivery_headers(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint, now: datetime, signer: Signer | None = None
) -> dict[str, str]:
    """Lago's three headers plus Tollgate-Signature (its `t` fresh on each attempt)."""
    body = delivery.body
    signature = (signer or Signer()).sign(body, endpoint.signature_algo)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Lago-Signature": signature,
        "X-Lago-Signature-Algorithm": endpoint.signature_algo,
        "X-Lago-Unique-Key": str(delivery.unique_key),
        "Tollgate-Signature": signing.tollgate_signature(
            body, secrets=live_secrets(endpoint, now), timestamp=int(now.timestamp())
        ),
    }


def _post(url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
    """One POST to the address the URL resolves to now (checked again: DNS rebinding)."""
    started = time.monotonic()

    def outcome(status_code: int | None, excerpt: str = "", error: str = "") -> AttemptOutcome:
        return AttemptOutcome(status_code, excerpt, error, int((time.monotonic() - started) * 1000))

    try:
        target = urlguard.resolve(url)
    except urlguard.RefusedURL as refused:
        return outcome(None, error=f"refused: {refused}")
    timeout = urllib3.Timeout(total=settings.TOLLGATE_WEBHOOK_TIMEOUT)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            timeout=timeout,
            retries=False,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False)
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
        finally:
            response.release_conn()
        return outcome(response.status, excerpt)
    except Exception as error:  # timeouts, refused connections, TLS: a failed attempt
        return outcome(None, error=f"{type(error).__name__}: {error}"[:1000])
    finally:
        pool.close()


def _retry_delay(retries_used: int) -> float | None:
    """Seconds before the next attempt after `retries_used` failed ones, with +-20% jitter; None
    when the schedule is exhausted."""
    delays = settings.TOLLGATE_WEBHOOK_RETRY_DELAYS
    if retries_used > len(delays):
        return None
    return max(0.0, delays[retries_used - 1] * random.uniform(0.8, 1.2))


def _attempt(delivery: WebhookDelivery, endpoint: WebhookEndpoint, signer: Signer) -> AttemptOutcome:
    now = timezone.now()
    outcome = _post(endpoint.webhook_url, delivery.body.encode(), delivery_headers(delivery, endpoint, now, signer))
    delivery.attempts_count += 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts_count,
        started_at=now,
        duration_ms=outcome.duration_ms,
        status_code=outcome.status_code,
        response_excerpt=outcome.response_excerpt,
        error=outcome.error,
        succeeded=outcome.succeeded,
    )
    finished = timezone.now()
    delivery.last_attempt_at = finished
    if outcome.succeeded:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = finished
    else:
        delay = _retry_delay(delivery.attempts_count - delivery.attempts_at_resend)
        if delay is None:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.next_attempt_at = finished + timedelta(seconds=delay)
    delivery.save(update_fields=["attempts_count", "last_attempt_at", "status", "delivered_at", "next_attempt_at"])
    return outcome


def endpoint_drain(*, endpoint_id: Any, limit: int = 100) -> int:
    """Send `endpoint_id`'s due deliveries, oldest first, until one fails (its retry is scheduled
    and the later ones wait behind it: per-endpoint order) or `limit` went out. One transaction
    per delivery, holding the endpoint's lock: a second worker finds it locked and leaves.
    Returns the number of deliveries that succeeded."""
    succeeded = 0
    signer = Signer()
    for _ in range(limit):
        with transaction.atomic():
            endpoint = (
                WebhookEndpoint.objects.select_for_update(skip_locked=True, no_key=True).filter(pk=endpoint_id).first()
            )
            if endpoint is None:  # deleted, or another worker is draining it
                return succeeded
            head = endpoint.deliveries.filter(status=DeliveryStatus.PENDING).order_by("id").first()
            if head is None:
                return succeeded
            now = timezone.now()
            if head.next_attempt_at > now:
                wait = (head.next_attempt_at - now).total_seconds()
                transaction.on_commit(functools.partial(_enqueue, [str(endpoint_id)], countdown=wait))
                return succeeded
            outcome = _attempt(head, endpoint, signer)
            if outcome.succeeded:
                succeeded += 1
                continue
            if head.status == DeliveryStatus.PENDING:
                wait = max((head.next_attempt_at - timezone.now()).total_seconds(), 0.0)
                transaction.on_commit(functools.partial(_enqueue, [str(endpoint_id)], countdown=wait))
                return succeeded
            logger.warning("webhooks: delivery %s failed for good after %s attempts", head.pk, head.attempts_count)
    # More remain: go on in a fresh task, so other endpoints' tasks get the worker in between.
    transaction.on_commit(lambda: _enqueue([str(endpoint_id)]))
    return succeeded


def delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again (the admin's action): the same body and unique key, a fresh retry
    schedule, behind the endpoint's older pending deliveries."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = timezone.now()
        delivery.attempts_at_resend = delivery.attempts_count
        delivery.save(update_fields=["status", "next_attempt_at", "attempts_at_resend"])
        endpoint_id = str(delivery.endpoint_id)
        transaction.on_commit(lambda: _enqueue([endpoint_id]), robust=True)
    return delivery


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Send the delivery tasks of endpoints with pending rows due for longer than the sweep's
    grace: their task was lost (broker down, worker killed). Returns how many endpoints."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.TOLLGATE_WEBHOOK_SWEEP_GRACE)
    endpoint_ids = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now - grace)
        .values_list("endpoint_id", flat=True)
        .distinct()
    )
    _enqueue([str(endpoint_id) for endpoint_id in endpoint_ids])
    return len(endpoint_ids)
