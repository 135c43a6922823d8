"""The portal link's token: the customer's id and its PortalAccess version, signed with
django.core.signing (TimestampSigner, a salt of its own so no other signed value of Tollgate, a
PDF link say, is ever accepted as a portal token), valid TOLLGATE_PORTAL_LINK_MAX_AGE seconds.

It is a credential for one customer's page only: API keys are matched by their SHA-256 in the
ApiKey table, so a token never authenticates an API request."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SIGNING_SALT = "portal.customer-link"


class PortalLinkInvalid(Exception):
    """Tampered, signed for another purpose, revoked or naming no live customer."""


class PortalLinkExpired(PortalLinkInvalid):
    """Older than TOLLGATE_PORTAL_LINK_MAX_AGE."""


@dataclass(frozen=True)
class PortalClaim:
    customer_id: str
    version: int


def sign(*, customer_id: str, version: int) -> str:
    return signing.TimestampSigner(salt=SIGNING_SALT).sign_object({"c": customer_id, "v": version})


def unsign(token: str) -> PortalClaim:
    try:
        payload = signing.TimestampSigner(salt=SIGNING_SALT).unsign_object(
            token, max_age=settings.TOLLGATE_PORTAL_LINK_MAX_AGE
        )
    except signing.SignatureExpired as error:
        raise PortalLinkExpired(str(error)) from error
    except (signing.BadSignature, ValueError, TypeError, UnicodeDecodeError) as error:
        raise PortalLinkInvalid(str(error)) from error
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str) or not isinstance(payload.get("v"), int):
        raise PortalLinkInvalid("unexpected payload")
    return PortalClaim(customer_id=payload["c"], version=payload["v"])
