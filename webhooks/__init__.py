"""Outbound webhooks: every billing event announced to the integrating product, signed, retried,
never lost. A receiver verifies a delivery with `webhooks.verify(body, header, secret)`."""

from .signing import SignatureError, verify

__all__ = ["SignatureError", "verify"]
