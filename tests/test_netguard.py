"""The SSRF guard: refusals happen before any connection, allowed requests reach the checked IP.

Only 127.0.0.1 is ever connected to. Refusals are tested with an inner transport that
records requests instead of sending them, or with ``LoopbackOnly``, which sends to
loopback alone, so a broken guard fails the test rather than reaching another address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from knowledge.crawl.netguard import (
    AddressPolicy,
    GuardedTransport,
    Resolver,
    forbidden_reason,
    resolve_checked,
)
from knowledge.errors import BlockedURLError

PUBLIC_IP = "93.184.216.34"  # never contacted: only the recording transport sees it
LOOPBACK_SOURCE = AddressPolicy(allow_private=True, private_hosts=frozenset({"127.0.0.1"}))
REDIRECTS = {
    "/to-private": "http://10.0.0.1/",
    "/to-metadata": "http://169.254.169.254/latest/meta-data/",
    "/to-ok": "/ok",
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path in REDIRECTS:
            self.send_response(302)
            self.send_header("Location", REDIRECTS[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class LoopbackOnly(httpx.AsyncBaseTransport):
    """The real transport, restricted to loopback, recording every request it is given."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []
        self.closed = False
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.url.host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"the guard let {request.url} through")
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        self.closed = True
        await self._real.aclose()


class Recorder(httpx.MockTransport):
    """Answers 200 to everything without any network, recording what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []
        super().__init__(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(200, text="ok")


def fake_resolver(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


def get(
    url: str,
    policy: AddressPolicy,
    inner: httpx.AsyncBaseTransport,
    resolver: Resolver | None = None,
    timeout: float = 5.0,
) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = GuardedTransport(policy, inner, resolver)
        async with httpx.AsyncClient(
            transport=transport, follow_redirects=True, timeout=timeout
        ) as client:
            return await client.get(url)

    return asyncio.run(fetch())


def sent_urls(inner: LoopbackOnly | Recorder) -> list[str]:
    return [str(request.url) for request in inner.sent]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fec0::1", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("127.1.2.3", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.170.2", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("100.64.0.1", "a shared (CGNAT) address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("::ffff:0.0.0.0", "an unspecified address"),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
        ("2002:a00:1::", "a private address"),  # 6to4 of 10.0.0.1
        ("169.254.170.23", "a cloud metadata address"),  # EKS Pod Identity credentials
        ("fd00:ec2::23", "a cloud metadata address"),
        ("::169.254.169.254", "a cloud metadata address"),  # IPv4-compatible
        ("::127.0.0.1", "a loopback address"),
        ("::10.0.0.1", "a private address"),
        ("::8.8.8.8", None),
        ("::ffff:0:169.254.169.254", "a cloud metadata address"),  # IPv4-translated
        ("64:ff9b::10.0.0.1", "a private address"),  # NAT64, well-known prefix
        ("64:ff9b:1::169.254.169.254", "a cloud metadata address"),  # NAT64, local-use prefix
        ("64:ff9b:1::127.0.0.1", "a loopback address"),
        ("64:ff9b:1::8.8.8.8", None),
        ("64:ff9b:1:a9fe:a9:fe00::", "an unspecified address"),  # the /48 layout: low bits 0
        ("192.0.0.1", "a reserved address"),
        ("192.0.0.9", "a reserved address"),  # PCP anycast: "global" to Python
        ("192.0.0.10", "a reserved address"),  # TURN anycast: "global" to Python
        ("192.88.99.1", "a reserved address"),  # the retired 6to4 relay anycast
        ("2002:c058:6301::", "a reserved address"),  # 6to4 of 192.88.99.1
    ],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


def test_policy_allows_private_address_only_for_the_sources_own_host() -> None:
    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({"wiki.corp"}))
    private = ipaddress.ip_address("10.0.0.1")
    assert policy.refusal("wiki.corp", private) is None
    assert policy.refusal("WIKI.corp", private) is None
    refusal = policy.refusal("other.corp", private)
    assert refusal is not None and "own host (wiki.corp)" in refusal
    assert AddressPolicy().refusal("wiki.corp", ipaddress.ip_address(PUBLIC_IP)) is None


def test_policy_without_allow_private_ignores_private_hosts() -> None:
    policy = AddressPolicy(allow_private=False, private_hosts=frozenset({"wiki.corp"}))
    refusal = policy.refusal("wiki.corp", ipaddress.ip_address("10.0.0.1"))
    assert refusal == (
        "10.0.0.1 is a private address; teambot only fetches private addresses "
        "for sources added with --allow-private"
    )


def test_policy_refuses_metadata_always() -> None:
    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({"169.254.169.254"}))
    refusal = policy.refusal("169.254.169.254", ipaddress.ip_address("169.254.169.254"))
    assert refusal == "169.254.169.254 is a cloud metadata address; teambot never fetches those"


def test_resolve_checked_does_not_look_up_ip_literals() -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError(f"looked up {host}")

    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({"::1", "127.0.0.1"}))
    assert asyncio.run(resolve_checked("127.0.0.1", 80, policy, no_dns)) == "127.0.0.1"
    assert asyncio.run(resolve_checked("[::1]", 80, policy, no_dns)) == "::1"
    with pytest.raises(BlockedURLError, match=r"^refused 10\.0\.0\.1: 10\.0\.0\.1 is a private"):
        asyncio.run(resolve_checked("10.0.0.1", 80, AddressPolicy(), no_dns))


def test_resolve_checked_refuses_a_name_with_any_private_address() -> None:
    resolver = fake_resolver({"docs.example.com": [PUBLIC_IP, "10.0.0.1"]})
    with pytest.raises(BlockedURLError, match=r"refused docs\.example\.com: 10\.0\.0\.1 is a"):
        asyncio.run(resolve_checked("docs.example.com", 443, AddressPolicy(), resolver))


def test_resolve_checked_returns_the_first_address() -> None:
    resolver = fake_resolver({"docs.example.com": [PUBLIC_IP, "2606:4700::1111", PUBLIC_IP]})
    address = asyncio.run(resolve_checked("docs.example.com", 443, AddressPolicy(), resolver))
    assert address == PUBLIC_IP


def test_localhost_is_resolved_and_checked() -> None:
    with pytest.raises(BlockedURLError, match=r"refused localhost: .* is a loopback address"):
        asyncio.run(resolve_checked("localhost", 80, AddressPolicy()))
    allowed = AddressPolicy(allow_private=True, private_hosts=frozenset({"localhost"}))
    assert asyncio.run(resolve_checked("localhost", 80, allowed)) in ("127.0.0.1", "::1")


def test_loopback_source_is_fetched_and_its_redirects_followed(server: str) -> None:
    inner = LoopbackOnly()
    response = get(f"{server}/to-ok", LOOPBACK_SOURCE, inner)
    assert response.status_code == 200
    assert response.text == f"host={server.removeprefix('http://')}"
    assert sent_urls(inner) == [f"{server}/to-ok", f"{server}/ok"]
    assert inner.closed


@pytest.mark.parametrize(
    ("path", "refused_url", "reason"),
    [
        ("/to-private", "http://10.0.0.1/", "10.0.0.1 is a private address"),
        (
            "/to-metadata",
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a cloud metadata address",
        ),
    ],
)
def test_redirect_from_allowed_source_to_other_private_address_is_refused(
    server: str, path: str, refused_url: str, reason: str
) -> None:
    inner = LoopbackOnly()
    with pytest.raises(BlockedURLError) as refusal:
        get(f"{server}{path}", LOOPBACK_SOURCE, inner)
    assert str(refusal.value).startswith(f"refused {refused_url}: {reason}")
    assert sent_urls(inner) == [f"{server}{path}"]


def test_private_source_without_allow_private_is_refused(server: str) -> None:
    inner = LoopbackOnly()
    with pytest.raises(BlockedURLError, match="sources added with --allow-private"):
        get(f"{server}/ok", AddressPolicy(), inner)
    assert inner.sent == []


def test_host_not_in_private_hosts_is_refused_even_with_allow_private(server: str) -> None:
    inner = LoopbackOnly()
    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({"docs.internal"}))
    with pytest.raises(
        BlockedURLError, match=r"covers only the source's own host \(docs\.internal"
    ):
        get(f"{server}/ok", policy, inner)
    assert inner.sent == []


def test_metadata_is_refused_even_when_allowed_by_name() -> None:
    inner = Recorder()
    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({"169.254.169.254"}))
    with pytest.raises(BlockedURLError, match="cloud metadata address"):
        get("http://169.254.169.254/latest/meta-data/", policy, inner)
    assert inner.sent == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.170.23/v1/credentials",
        "http://[fd00:ec2::23]/v1/credentials",
        "http://[::169.254.169.254]/latest/meta-data/",
        "http://[::ffff:0:169.254.169.254]/latest/meta-data/",
        "http://[64:ff9b::169.254.169.254]/latest/meta-data/",
        "http://[64:ff9b:1::169.254.169.254]/latest/meta-data/",
    ],
)
def test_metadata_in_every_spelling_is_refused_even_when_allowed_by_name(url: str) -> None:
    host = httpx.URL(url).host
    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({host}))
    inner = Recorder()
    with pytest.raises(BlockedURLError, match="is a cloud metadata address; teambot never fetches"):
        get(url, policy, inner)
    assert inner.sent == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://192.0.0.9/", "a reserved address"),
        ("http://192.0.0.10/", "a reserved address"),
        ("http://192.88.99.1/", "a reserved address"),
        ("http://[2002:c058:6301::]/", "a reserved address"),
        ("http://[::10.0.0.1]/", "a private address"),
        ("http://[::127.0.0.1]/", "a loopback address"),
        ("http://[64:ff9b:1::10.0.0.1]/", "a private address"),
    ],
)
def test_special_purpose_and_embedded_addresses_are_refused_for_what_they_are(
    url: str, reason: str
) -> None:
    inner = Recorder()
    with pytest.raises(BlockedURLError, match=f"^refused {re.escape(url)}: .* is {reason}; "):
        get(url, AddressPolicy(), inner)
    assert inner.sent == []


@pytest.mark.parametrize("address", ["::808:808", "64:ff9b:1::808:808"])
def test_an_embedded_public_address_is_fetched(address: str) -> None:
    inner = Recorder()
    get(f"http://[{address}]/guide", AddressPolicy(), inner)
    assert sent_urls(inner) == [f"http://[{address}]/guide"]


@pytest.mark.parametrize("url", ["http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"])
def test_ip_literal_urls_are_checked(url: str) -> None:
    inner = Recorder()
    with pytest.raises(BlockedURLError):
        get(url, AddressPolicy(), inner)
    assert inner.sent == []


def test_request_goes_to_the_checked_address_with_the_original_host(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    inner = LoopbackOnly()
    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({"docs.internal"}))
    resolver = fake_resolver({"docs.internal": ["127.0.0.1"]})
    response = get(f"http://docs.internal:{port}/ok", policy, inner, resolver)
    assert response.text == f"host=docs.internal:{port}"
    assert str(response.url) == f"http://docs.internal:{port}/ok"
    assert sent_urls(inner) == [f"http://127.0.0.1:{port}/ok"]


def test_https_keeps_the_name_for_sni_and_certificate_checks() -> None:
    inner = Recorder()
    resolver = fake_resolver({"docs.example.com": [PUBLIC_IP]})
    get("https://docs.example.com/guide?x=1", AddressPolicy(), inner, resolver)
    (request,) = inner.sent
    assert str(request.url) == f"https://{PUBLIC_IP}/guide?x=1"
    assert request.headers["Host"] == "docs.example.com"
    assert request.extensions["sni_hostname"] == "docs.example.com"


def test_international_names_are_checked_and_sent_idna_encoded() -> None:
    inner = Recorder()
    policy = AddressPolicy(allow_private=True, private_hosts=frozenset({"xn--bcher-kva.de"}))
    resolver = fake_resolver({"xn--bcher-kva.de": ["10.0.0.7"]})
    get("https://bücher.de/guide", policy, inner, resolver)
    (request,) = inner.sent
    assert str(request.url) == "https://10.0.0.7/guide"
    assert request.extensions["sni_hostname"] == "xn--bcher-kva.de"


def test_ipv6_address_is_bracketed() -> None:
    inner = Recorder()
    resolver = fake_resolver({"docs.example.com": ["2606:4700::1111"]})
    get("http://docs.example.com:8080/guide", AddressPolicy(), inner, resolver)
    (request,) = inner.sent
    assert str(request.url) == "http://[2606:4700::1111]:8080/guide"
    assert request.headers["Host"] == "docs.example.com:8080"
    assert "sni_hostname" not in request.extensions


def test_dns_rebinding_to_a_private_address_is_refused() -> None:
    inner = Recorder()
    resolver = fake_resolver({"docs.example.com": ["10.0.0.1"]})
    with pytest.raises(BlockedURLError) as refusal:
        get("https://docs.example.com/guide", AddressPolicy(), inner, resolver)
    assert str(refusal.value) == (
        "refused https://docs.example.com/guide: 10.0.0.1 is a private address; "
        "teambot only fetches private addresses for sources added with --allow-private"
    )
    assert inner.sent == []


def test_every_request_is_resolved_again() -> None:
    """A name that turns private between two requests of one client is refused the second time."""
    answers = iter([[PUBLIC_IP], ["169.254.169.254"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    async def fetch_twice(inner: Recorder) -> None:
        transport = GuardedTransport(AddressPolicy(), inner, rebinding)
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get("http://docs.example.com/a")
            await client.get("http://docs.example.com/b")

    inner = Recorder()
    with pytest.raises(BlockedURLError, match="cloud metadata"):
        asyncio.run(fetch_twice(inner))
    assert sent_urls(inner) == [f"http://{PUBLIC_IP}/a"]


def test_dns_failure_is_a_connect_error_for_the_request() -> None:
    async def no_such_name(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    inner = Recorder()
    with pytest.raises(httpx.ConnectError, match=r"cannot resolve docs\.example\.com") as failure:
        get("http://docs.example.com/", AddressPolicy(), inner, no_such_name)
    assert str(failure.value.request.url) == "http://docs.example.com/"
    assert inner.sent == []


def test_name_without_addresses_is_a_connect_error() -> None:
    with pytest.raises(httpx.ConnectError, match="no addresses"):
        get(
            "http://docs.example.com/",
            AddressPolicy(),
            Recorder(),
            fake_resolver({"docs.example.com": []}),
        )


def test_slow_dns_honours_the_connect_timeout() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return [PUBLIC_IP]

    inner = Recorder()
    with pytest.raises(httpx.ConnectTimeout, match=r"timed out resolving docs\.example\.com"):
        get("http://docs.example.com/", AddressPolicy(), inner, slow, timeout=0.05)
    assert inner.sent == []
