"""Signatures of a delivery, and `verify`, what a receiver runs on Tollgate-Signature.

Pure functions (no Django): X-Lago-Signature as Lago computes it (jwt: RS256 over
{"data": body, "iss": issuer}; hmac: base64 HMAC-SHA256 of the body with the organization's key)
and Tollgate-Signature `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one v1= per live
endpoint secret (two during a rotation's overlap).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

DEFAULT_TOLERANCE = 300


class SignatureError(ValueError):
    """The Tollgate-Signature header does not prove the body came from Tollgate, now."""


def lago_jwt_signature(body: str, *, private_key: RSAPrivateKey | str, issuer: str) -> str:
    """`private_key`: a loaded key, or its PEM."""
    return jwt.encode({"data": body, "iss": issuer}, private_key, algorithm="RS256")


def lago_hmac_signature(body: str, *, hmac_key: str) -> str:
    digest = hmac.new(hmac_key.encode(), body.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _v1(timestamp: int, body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def tollgate_signature(body: str, *, secrets: Iterable[str], timestamp: int | None = None) -> str:
    """`t=<timestamp>,v1=<sig>[,v1=<sig>...]`: one v1 per live secret, newest first."""
    moment = int(time.time()) if timestamp is None else timestamp
    raw = body.encode()
    return ",".join([f"t={moment}", *(f"v1={_v1(moment, raw, secret)}" for secret in secrets)])


def verify(
    body: bytes | str, header: str, secret: str, tolerance: int = DEFAULT_TOLERANCE, *, now: float | None = None
) -> None:
    """Check a delivery's Tollgate-Signature `header` against the endpoint's signing `secret`.

    Raises SignatureError when no v1= matches the exact `body` bytes, or when the timestamp is more
    than `tolerance` seconds away from now (a replay). Returns None when the delivery is genuine.
    """
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed timestamp")
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("no timestamp or no v1 signature")
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance (replay?)")
    expected = _v1(timestamp, raw, secret)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("no signature matches the body")
