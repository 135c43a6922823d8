"""Writes one ApiLog row per /api/ request, after its answer is made (never failing it)."""

# - Reads log their query, writes their body and answer, secrets redacted (audit.redact).
# - The event ingestion paths are skipped unless TOLLGATE_API_LOGS_EVENTS is on: an insert per
#   batch would be an extra database round trip on the hottest path.
# - The logs' own routes are not logged (reading the logs is no activity), as Lago's
#   skip_audit_logs! on its log controllers.
# - The row is one INSERT in autocommit after the view's transaction ended; a failure to write
#   it is logged and the answer leaves as it was.
# - That autocommitted INSERT does not wait for its WAL flush (synchronous_commit off for its own
#   transaction only, set in the same statement: `_write_unflushed`): the flush was most of the
#   log's cost (about 20 ms of a current_usage request on a loaded machine). A crash of the
#   database server may lose the last few API log rows (at most about three times
#   wal_writer_delay of commits); never anything else: the setting is local to the log's own
#   one-statement transaction, and inside a caller's transaction (a savepoint) the log commits
#   with it, as that transaction asks. An access log may lose its tail; billing data never.

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from billing_project.bulk import Tail, insert_together

from .redact import redact

logger = logging.getLogger(__name__)

API_PATH = re.compile(r"^/api/(?P<version>v\d+)/")
NOT_LOGGED = re.compile(r"^/api/v\d+/(api_logs|activity_logs|schema/|docs/)")
EVENT_PATHS = re.compile(r"^/api/v\d+/events(/batch)?/?$")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_LOGGED_BYTES = 64 * 1024


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    if len(raw) > MAX_LOGGED_BYTES:
        return {"truncated": True, "bytes": len(raw)}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"unparsed": True, "bytes": len(raw)}


def _as_object(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value if isinstance(value, dict) else {"value": value}


class ApiLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = API_PATH.match(request.path)
        if (
            not settings.TOLLGATE_API_LOGS
            or match is None
            or NOT_LOGGED.match(request.path)
            or self._skipped_event_path(request)
        ):
            return self.get_response(request)
        write = request.method in WRITES
        try:
            # Read now, before the view's parser consumes the stream (then it is cached for it).
            body = request.body if write else b""
        except Exception:  # too large, or unreadable: the view answers it, unlogged
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = int((time.perf_counter() - started) * 1000)
        try:
            arguments = (request, response, match["version"], body if write else None, duration_ms)
            if transaction.get_connection().in_atomic_block:
                # A savepoint inside an open transaction (a test's, a caller's): a refused insert
                # undoes itself alone. Otherwise one autocommitted INSERT: one round trip.
                with transaction.atomic():
                    self._write(*arguments)
            else:
                self._write(*arguments, unflushed=True)
        except Exception:
            logger.exception("audit: the API log of %s %s was not written", request.method, request.path)
        return response

    @staticmethod
    def _skipped_event_path(request: HttpRequest) -> bool:
        return not settings.TOLLGATE_API_LOGS_EVENTS and bool(EVENT_PATHS.match(request.path))

    @staticmethod
    def _write(
        request: HttpRequest,
        response: HttpResponse,
        version: str,
        body: bytes | None,
        duration_ms: int,
        *,
        unflushed: bool = False,
    ) -> None:
        from .models import ApiLog

        api_key = getattr(getattr(request, "user", None), "api_key", None)
        if body is None:
            logged_body: Any = {key: values if len(values) > 1 else values[0] for key, values in request.GET.lists()}
            answer = None
        else:
            logged_body = _as_object(_json(body)) or {}
            answer = _as_object(_json(response.content)) if not response.streaming else None
        log = ApiLog(
            api_key=api_key,
            api_key_name=getattr(api_key, "name", ""),
            client=request.META.get("HTTP_USER_AGENT", "")[:255],
            http_method=request.method or "",
            http_status=response.status_code,
            request_origin=f"{request.scheme}://{request.get_host()}"[:255],
            request_path=request.path[:2048],
            api_version=version,
            duration_ms=duration_ms,
            request_body=redact(logged_body),
            request_response=redact(answer),
            logged_at=timezone.now(),
        )
        if unflushed and connection.vendor == "postgresql":
            _write_unflushed(log)
        else:
            log.save(force_insert=True)


def _write_unflushed(log: Any) -> None:
    """`log`'s INSERT, autocommitted without waiting for the WAL flush: one statement whose
    set_config(..., is_local => true) holds for its own implicit transaction, whose commit reads
    it (SET LOCAL outside a transaction block would be ignored, and BEGIN/SET/COMMIT would be
    three more round trips)."""
    insert_together(
        [(type(log), [log])],
        tail=Tail(
            ctes="unflushed AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)",
            select="SELECT setting FROM unflushed",
            params={},
        ),
    )
