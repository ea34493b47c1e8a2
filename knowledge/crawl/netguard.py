"""The SSRF guard: every request the crawler sends goes to an address checked here first.

An admin types a source URL, and its pages link and redirect wherever they like; unguarded,
a crawl could read a cloud metadata service's credentials or an intranet admin page and
store the answer as "documentation". ``GuardedTransport`` resolves each request's host
once, refuses any address the ``AddressPolicy`` does not allow, and connects to the very
address it checked, so a DNS answer that changes between check and connect (DNS
rebinding) changes nothing. httpx follows redirects by calling the transport again, so
every hop is checked.

Give the client no ``proxy=`` or ``mounts=``: a proxy transport would bypass this one and
resolve names itself. (Passing ``transport=`` already turns off proxies from the environment.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from knowledge.errors import BlockedURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves (host, port) to IP address strings, best first; raises OSError on failure."""

_METADATA_REASON = "a cloud metadata address"
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack…
        "fd00:ec2::254",  # AWS over IPv6
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS Pod Identity credentials
        "fd00:ec2::23",  # the same over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
_SHARED_NETWORK = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
# Not private by Python's table, yet no documentation lives there: IETF protocol
# assignments (its anycast addresses count as global) and the retired 6to4 relay anycast.
_RESERVED_NETWORKS = tuple(
    ipaddress.IPv4Network(network) for network in ("192.0.0.0/24", "192.88.99.0/24")
)
# IPv6 ranges whose low 32 bits are the IPv4 address a packet is delivered to:
# IPv4-compatible (RFC 4291), IPv4-translated (RFC 2765), and the NAT64 well-known and
# local-use prefixes (RFC 6052, RFC 8215). A local-use prefix shorter than /96 places the
# IPv4 address in other bits and leaves the low ones zero: that reads as 0.0.0.0, refused.
_IPV4_IN_LOW_BITS = tuple(
    ipaddress.IPv6Network(network)
    for network in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")
)


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address ("a private address", …), or None if it is.

    IPv6 addresses that carry an IPv4 address (IPv4-mapped, -compatible or -translated,
    NAT64, 6to4) are judged by it.
    """
    ip = _embedded_ipv4(ip) or ip
    if ip in _METADATA_ADDRESSES:
        return _METADATA_REASON
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED_NETWORK:
        return "a shared (CGNAT) address"
    if ip.is_reserved or any(ip in network for network in _RESERVED_NETWORKS):
        return "a reserved address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which non-public addresses one source may reach.

    Only with ``allow_private`` and only for the hosts in ``private_hosts`` (the source's
    own host, lowercase as in its URL, e.g. ``{"127.0.0.1"}`` or ``{"wiki.corp"}``), so a
    link from an allowed intranet page to another private address is still refused.
    Cloud metadata addresses are refused always.
    """

    allow_private: bool = False
    private_hosts: frozenset[str] = frozenset()

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why ``host`` may not be fetched at ``ip``, for the person who added the source."""
        reason = forbidden_reason(ip)
        if reason is None:
            return None
        if reason == _METADATA_REASON:
            return f"{ip} is {reason}; teambot never fetches those"
        if not self.allow_private:
            return (
                f"{ip} is {reason}; teambot only fetches private addresses "
                "for sources added with --allow-private"
            )
        if host.lower() in self.private_hosts:
            return None
        allowed = ", ".join(sorted(self.private_hosts)) or "none"
        return f"{ip} is {reason}; --allow-private covers only the source's own host ({allowed})"


async def resolve_checked(
    host: str,
    port: int,
    policy: AddressPolicy,
    resolver: Resolver | None = None,
    *,
    target: str | None = None,
) -> str:
    """Resolve ``host`` and return the address to connect to, if every address is allowed.

    IP literals are not looked up. Raises ``BlockedURLError`` naming ``target`` (default:
    the host) when any resolved address is refused — a name that also resolves to a
    private address is refused outright, whichever address a connect would pick — and
    ``httpx.ConnectError`` when the name does not resolve.
    """
    host = host.strip("[]").lower()
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = await _resolve(host, port, resolver or _system_resolver)
    for address in addresses:
        explanation = policy.refusal(host, ipaddress.ip_address(address))
        if explanation is not None:
            raise BlockedURLError(f"refused {target or host}: {explanation}")
    return addresses[0]


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request only to an address ``policy`` allows.

    The request goes to the checked IP with the original ``Host`` header and, for https,
    the original name as TLS SNI and certificate hostname. Connections are pooled per IP:
    use one client per source so that pooled https connections serve one host.
    """

    def __init__(
        self,
        policy: AddressPolicy,
        inner: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.policy = policy
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._resolver = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as canonical URLs spell it
        port = url.port or (443 if url.scheme == "https" else 80)
        connect_timeout = request.extensions.get("timeout", {}).get("connect")
        try:
            async with asyncio.timeout(connect_timeout):
                address = await resolve_checked(
                    host, port, self.policy, self._resolver, target=str(url)
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out resolving {host}", request=request) from None
        except httpx.RequestError as error:
            error.request = request
            raise
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=request.headers,  # keeps the original Host header
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _resolve(host: str, port: int, resolver: Resolver) -> list[str]:
    try:
        addresses = list(dict.fromkeys(await resolver(host, port)))
    except (OSError, UnicodeError) as error:  # UnicodeError: a name IDNA cannot encode
        raise httpx.ConnectError(f"cannot resolve {host}: {error}") from error
    if not addresses:
        raise httpx.ConnectError(f"cannot resolve {host}: no addresses")
    return addresses


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.is_unspecified or ip.is_loopback:  # :: and ::1, not IPv4-compatible 0.0.0.0/1
        return None
    if any(ip in network for network in _IPV4_IN_LOW_BITS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour
