"""Lago's metadata routes of a resource (`.../{id}/metadata[/{key}]`): POST replaces, PATCH and
PUT merge (Lago's `resource :metadata` update answers both), DELETE removes all (null), DELETE
/{key} one key; each answers `{"metadata": {...}}`. An app passes how to find its owner and its
services (billing_project.metadata checks values)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .errors import BadRequest

_ERROR = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Lago's error shape")


def metadata_views(
    *,
    prefix: str,
    resource_name: str,
    find: Callable[..., Any],
    set_metadata: Callable[..., Mapping[str, Any] | None],
    delete_metadata: Callable[..., Mapping[str, Any] | None],
    with_request: bool = False,
) -> tuple[type[APIView], type[APIView]]:
    """Two views: `.../metadata` and `.../metadata/<key>`. `find(**path kwargs)` returns the owner
    (or raises its 404); `set_metadata(owner, metadata, merge)` and `delete_metadata(owner, key)`
    return the owner's metadata after the change. `with_request`: the callables also get the
    request, last (for an owner whose services record who changed it)."""
    body = inline_serializer(f"{prefix}MetadataRequest", fields={"metadata": serializers.DictField()})
    answer = inline_serializer(f"{prefix}MetadataResponse", fields={"metadata": serializers.DictField(allow_null=True)})
    responses = {200: answer, 400: _ERROR, 404: _ERROR, 422: _ERROR}

    def _set(request: Request, merge: bool, kwargs: dict[str, Any]) -> Response:
        metadata = request.data.get("metadata") if isinstance(request.data, dict) else None
        if not isinstance(metadata, dict):
            raise BadRequest("param is missing or the value is empty: metadata")
        return Response({"metadata": set_metadata(find(**kwargs), metadata, merge, *_extra(request))})

    def _extra(request: Request) -> tuple[Request, ...]:
        return (request,) if with_request else ()

    class MetadataView(APIView):
        @extend_schema(operation_id=f"replace{prefix}Metadata", request=body, responses=responses)
        def post(self, request: Request, **kwargs: Any) -> Response:
            return _set(request, False, kwargs)

        @extend_schema(operation_id=f"merge{prefix}Metadata", request=body, responses=responses)
        def patch(self, request: Request, **kwargs: Any) -> Response:
            return _set(request, True, kwargs)

        @extend_schema(operation_id=f"update{prefix}Metadata", request=body, responses=responses)
        def put(self, request: Request, **kwargs: Any) -> Response:
            return _set(request, True, kwargs)

        @extend_schema(operation_id=f"deleteAll{prefix}Metadata", responses=responses)
        def delete(self, request: Request, **kwargs: Any) -> Response:
            return Response({"metadata": delete_metadata(find(**kwargs), None, *_extra(request))})

    class MetadataKeyView(APIView):
        @extend_schema(operation_id=f"delete{prefix}MetadataKey", responses=responses)
        def delete(self, request: Request, key: str, **kwargs: Any) -> Response:
            return Response({"metadata": delete_metadata(find(**kwargs), key, *_extra(request))})

    MetadataView.resource_name = MetadataKeyView.resource_name = resource_name  # type: ignore[attr-defined]
    return MetadataView, MetadataKeyView
