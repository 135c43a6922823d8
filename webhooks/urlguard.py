"""Which endpoint URLs Tollgate may call: http(s) only, and never an address inside the network it
runs in (loopback, private, link-local, cloud metadata, ...), checked on the addresses the host
name resolves to, at registration and again at each delivery (against DNS rebinding). The delivery
then connects to the address checked, not to a second resolution."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

# Metadata services that are not in a private or link-local range everywhere.
_METADATA_ADDRESSES = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


class RefusedURL(ValueError):
    """The URL may not receive webhooks; `code` is the API's validation code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str  # the checked IP the delivery connects to
    path: str  # path and query


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
        or address in _METADATA_ADDRESSES
    )


def resolve(url: str) -> Target:
    """The URL's target, its host resolved and every address checked. Raises RefusedURL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedURL("url_is_invalid", "only http and https URLs with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedURL("url_is_invalid", "invalid port")
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RefusedURL("url_is_invalid", f"{parts.hostname} does not resolve")
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise RefusedURL("url_is_invalid", f"{parts.hostname} does not resolve")
    if not settings.TOLLGATE_WEBHOOKS_ALLOW_PRIVATE_URLS and any(_forbidden(address) for address in addresses):
        raise RefusedURL("url_is_private", f"{parts.hostname} resolves to a non-public address")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=parts.hostname, port=port, address=str(addresses[0]), path=path)
