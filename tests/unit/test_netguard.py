"""The network guard: every blocked range, at both ends, and the literal forms of URLs."""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
    summarize_address_range,
)

import pytest

from orderhooks.delivery.netguard import (
    BLOCKED_IPV4_NETWORKS,
    BLOCKED_IPV6_NETWORKS,
    NetworkGuard,
    check_url,
    embedded_ipv4,
    parse_ip_literal,
)

GUARD = NetworkGuard()

# (first address, last address) of every blocked IPv4 range of docs/guarantees.md#the-network-guard.
BLOCKED_V4_RANGES = [
    ("0.0.0.0", "0.255.255.255"),
    ("10.0.0.0", "10.255.255.255"),
    ("100.64.0.0", "100.127.255.255"),
    ("127.0.0.0", "127.255.255.255"),
    ("169.254.0.0", "169.254.255.255"),
    ("172.16.0.0", "172.31.255.255"),
    ("192.0.0.0", "192.0.0.255"),
    ("192.0.2.0", "192.0.2.255"),
    ("192.88.99.0", "192.88.99.255"),
    ("192.168.0.0", "192.168.255.255"),
    ("198.18.0.0", "198.19.255.255"),
    ("198.51.100.0", "198.51.100.255"),
    ("203.0.113.0", "203.0.113.255"),
    ("224.0.0.0", "239.255.255.255"),
    ("240.0.0.0", "255.255.255.254"),
    ("255.255.255.255", "255.255.255.255"),
]

# Addresses just outside each range, which are public and must stay reachable.
PUBLIC_V4 = [
    "1.0.0.0",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "191.255.255.255",
    "192.0.1.0",
    "192.0.3.0",
    "192.88.98.255",
    "192.88.100.0",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.255",
    "8.8.8.8",
    "93.184.216.34",
]

BLOCKED_V6_RANGES = [
    ("::", "::"),
    ("::1", "::1"),
    ("64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"),
    ("100::", "100::ffff:ffff:ffff:ffff"),
    ("2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("2001::", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff"),  # Teredo
    ("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("::7f00:1", "::ffff"),  # deprecated IPv4-compatible forms
    ("3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"),
]

PUBLIC_V6 = [
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "2001:200::",  # first address after 2001::/23
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db9::",
    "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "100:0:0:1::",  # after 100::/64
    "2003::1",
]


@pytest.mark.parametrize(("first", "last"), [*BLOCKED_V4_RANGES, *BLOCKED_V6_RANGES])
def test_every_range_is_blocked_at_both_ends(first: str, last: str) -> None:
    assert GUARD.is_blocked(ip_address(first))
    assert GUARD.is_blocked(ip_address(last))


@pytest.mark.parametrize("address", [*PUBLIC_V4, *PUBLIC_V6])
def test_public_addresses_next_to_the_ranges_are_allowed(address: str) -> None:
    assert not GUARD.is_blocked(ip_address(address))


def test_tables_hold_exactly_the_ipv4_ranges_of_the_spec() -> None:
    spec = {
        net
        for first, last in BLOCKED_V4_RANGES
        for net in summarize_address_range(IPv4Address(first), IPv4Address(last))
    }
    # 240.0.0.0/4 minus its last address, plus that address, is the table's 240/4 again.
    covered = set(BLOCKED_IPV4_NETWORKS)
    assert all(any(net.subnet_of(big) for big in covered) for net in spec)
    assert all(any(big.subnet_of(s) or s.subnet_of(big) for s in spec) for big in covered)


def test_ipv6_table_holds_the_ranges_of_the_spec() -> None:
    for cidr in ("fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2001::/23", "2001:db8::/32"):
        assert IPv6Network(cidr) in BLOCKED_IPV6_NETWORKS
    for cidr in ("64:ff9b:1::/48", "100::/64"):
        assert IPv6Network(cidr) in BLOCKED_IPV6_NETWORKS


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:c0a8:101::1", "192.168.1.1"),
        ("2002:0808:0808::", "8.8.8.8"),
    ],
)
def test_embedded_ipv4_is_extracted(address: str, embedded: str) -> None:
    assert str(embedded_ipv4(IPv6Address(address))) == embedded


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",
        "::ffff:0.0.0.0",
        "::ffff:169.254.169.254",
        "::ffff:192.168.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::ffff:ffff",  # NAT64 of 255.255.255.255
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002::",  # 6to4 of 0.0.0.0
    ],
)
def test_mapped_nat64_and_6to4_forms_of_blocked_ipv4_are_blocked(address: str) -> None:
    assert GUARD.is_blocked(ip_address(address))


@pytest.mark.parametrize(
    "address",
    ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_mapped_nat64_and_6to4_forms_of_public_ipv4_are_allowed(address: str) -> None:
    assert not GUARD.is_blocked(ip_address(address))


def test_allowed_networks_are_exempt_including_their_mapped_forms() -> None:
    guard = NetworkGuard([ip_network("127.0.0.0/8"), ip_network("fd00::/8")])
    assert not guard.is_blocked(ip_address("127.0.0.1"))
    assert not guard.is_blocked(ip_address("::ffff:127.0.0.1"))
    assert not guard.is_blocked(ip_address("fd12::1"))
    assert guard.is_blocked(ip_address("10.0.0.1"))
    assert guard.is_blocked(ip_address("::1"))
    assert guard.is_blocked(ip_address("fc00::1"))
    assert guard.allowed_networks == (ip_network("127.0.0.0/8"), ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.0x10.1", "10.16.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1"),
        ("0x", "0.0.0.0"),
    ],
)
def test_literal_forms_are_normalised(host: str, expected: str) -> None:
    assert str(parse_ip_literal(host)) == expected


@pytest.mark.parametrize(
    "host", ["example.com", "localhost", "a1", "1a.example", "xn--bcher-kva.de"]
)
def test_names_are_not_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "256.0.0.1", "1.16777216", "a.1", "1.08", "1_0.0.0.1", "[::1::2]"]
)
def test_malformed_literals_are_refused(host: str) -> None:
    with pytest.raises(ValueError):
        parse_ip_literal(host)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "https://127.0.0.1:8443/hook",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://%31%32%37.0.0.1/",
        "http://\uff11\uff12\uff17.0.0.1/",  # full-width digits
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1%25eth0]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:c0a8:101::]/",
        "http://user:pass@10.0.0.1/",
        "http://0.0.0.0/",
    ],
)
def test_check_url_refuses_literal_blocked_addresses(url: str) -> None:
    problem = check_url(url, ())
    assert problem is not None
    assert "blocked" in problem


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/", "http"),
        ("javascript:alert(1)", "http"),
        ("file:///etc/passwd", "http"),
        ("http:///path", "host"),
        ("http://exa mple.com/", "whitespace"),
        (" https://example.com/", "whitespace"),
        ("https://example.com/a\tb", "whitespace"),
        ("https://example.com/\x7f", "control"),
        ("http://1.2.3.4.5/", "host"),
        ("http://[::1/", "valid URL"),
        ("http://example.com:99999/", "valid URL"),
        ("http://example.com:0/", "port"),
    ],
)
def test_check_url_refuses_malformed_urls(url: str, fragment: str) -> None:
    problem = check_url(url, ())
    assert problem is not None
    assert fragment in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks/orders",
        "http://example.com:8080/",
        "https://bücher.de/",
        "http://8.8.8.8/",
        "http://[2001:4860:4860::8888]/",
        "http://localhost/",  # a name: checked at connect time, not here
        "HTTPS://Example.COM./x?y=1",
    ],
)
def test_check_url_accepts_public_urls_and_names(url: str) -> None:
    assert check_url(url, ()) is None


def test_check_url_honours_allowed_networks() -> None:
    allowed = (ip_network("127.0.0.0/8"),)
    assert check_url("http://127.0.0.1:9000/", allowed) is None
    assert check_url("http://[::ffff:127.0.0.1]/", allowed) is None
    assert check_url("http://10.0.0.1/", allowed) is not None
