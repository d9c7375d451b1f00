"""Which addresses orderhooks may never connect to (docs/guarantees.md, network guard).

Webhook URLs are user input, so a URL must not reach loopback, private networks, cloud
metadata or any other address that is not on the public internet. The tables below are
explicit rather than `ipaddress`'s `is_private` / `is_global`, whose tables differ between
Python versions and miss ranges (NAT64, 6to4 and IPv4-mapped forms are checked through
the IPv4 address they embed).

Two checks use these tables: `check_url` refuses a literal blocked address when a webhook
is created or changed (names are not resolved there), and the transport checks every
address a name resolves to, at connect time (`NetworkGuard.is_blocked`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import unquote

from yarl import URL

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

BLOCKED_IPV4_NETWORKS: tuple[IPv4Network, ...] = tuple(
    IPv4Network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata endpoints
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including the broadcast address
        "255.255.255.255/32",  # limited broadcast
    )
)

BLOCKED_IPV6_NETWORKS: tuple[IPv6Network, ...] = tuple(
    IPv6Network(cidr)
    for cidr in (
        # Reserved by the IETF: unspecified (::), loopback (::1), the deprecated
        # IPv4-compatible form (::a.b.c.d) and SIIT. IPv4-mapped addresses inside it are
        # checked through their embedded address before this table is consulted.
        "::/8",
        "64:ff9b:1::/48",  # NAT64 local use: translated by a private gateway
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) included
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 segment identifiers
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)

IPV4_MAPPED = IPv6Network("::ffff:0:0/96")
NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")
SIX_TO_FOUR = IPv6Network("2002::/16")

ALLOWED_SCHEMES = ("http", "https")

_HEX_PART = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL_PART = re.compile(r"0[0-7]+")
_DECIMAL_PART = re.compile(r"0|[1-9][0-9]*")
# A DNS name after IDNA encoding (yarl has already turned Unicode into punycode).
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")


class NetworkGuard:
    """Decides whether an address may be connected to; `allowed_networks` are exempt."""

    def __init__(self, allowed_networks: Sequence[IPNetwork] = ()) -> None:
        self._allowed = tuple(allowed_networks)

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        """The networks exempt from the guard."""
        return self._allowed

    def is_blocked(self, ip: IPAddress) -> bool:
        """Whether orderhooks must never connect to `ip`."""
        if self._is_allowed(ip):
            return False
        if isinstance(ip, IPv4Address):
            return any(ip in net for net in BLOCKED_IPV4_NETWORKS)
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            return self.is_blocked(embedded)
        return any(ip in net for net in BLOCKED_IPV6_NETWORKS)

    def _is_allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self._allowed)


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address reaches."""
    if ip in IPV4_MAPPED or ip in NAT64_WELL_KNOWN:
        return IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip in SIX_TO_FOUR:
        return IPv4Address((int(ip) >> 80) & 0xFFFF_FFFF)
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is a literal, else None (a name).

    IPv4 is parsed the way URL parsers and `inet_aton` do, so `0x7f.1`, `2130706433` and
    `0177.0.0.1` are all 127.0.0.1. Raises ValueError for a malformed literal.
    """
    host = host.strip("[]")
    if ":" in host:
        # A zone id (`fe80::1%eth0`) does not change which range the address is in.
        return IPv6Address(host.split("%", 1)[0])
    return _parse_ipv4_literal(host)


def _parse_ipv4_literal(host: str) -> IPv4Address | None:
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # a trailing dot names the same address
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and _parse_ipv4_part(last) is None:
        return None  # a host that does not end in a number is a name
    numbers = [_parse_ipv4_part(p) for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError(f"malformed IPv4 address {host!r}")
    values = [n for n in numbers if n is not None]
    last_bits = 8 * (5 - len(values))
    if any(v > 0xFF for v in values[:-1]) or values[-1] >= 1 << last_bits:
        raise ValueError(f"IPv4 address out of range {host!r}")
    value = values[-1]
    for index, part in enumerate(values[:-1]):
        value |= part << (8 * (3 - index))
    return IPv4Address(value)


def _parse_ipv4_part(part: str) -> int | None:
    # Strict patterns: int() alone would also accept "1_0", " 1" and non-ASCII digits.
    if _HEX_PART.fullmatch(part):
        return int(part[2:], 16) if len(part) > 2 else 0
    if _OCTAL_PART.fullmatch(part):
        return int(part, 8)
    if _DECIMAL_PART.fullmatch(part):
        return int(part, 10)
    return None


# Unicode categories no URL holds unescaped: controls (C0, DEL, C1), spaces, line and
# paragraph separators.
_NOT_IN_URLS = frozenset({"Cc", "Zs", "Zl", "Zp"})


def check_url(url: str, allowed_networks: Sequence[IPNetwork]) -> str | None:
    """Why `url` may not be a webhook URL (scheme, host, or a literal blocked address),
    or None when it may. Names are not resolved here; the transport checks them."""
    if any(unicodedata.category(c) in _NOT_IN_URLS for c in url):
        # The parser would strip or escape these, so the URL called would not be the
        # one stored and shown (a leading space, a tab, DEL, a line separator).
        return "must be a valid URL: no whitespace or control characters"
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError):
        return "must be a valid URL"
    if parsed.scheme not in ALLOWED_SCHEMES:
        return "must use http or https"
    if not parsed.raw_host:
        return "must have a host"
    if port is not None and not 0 < port < 65536:
        return "must have a valid port"
    # Percent-encoded and full-width digits name the same address once normalised.
    host = unicodedata.normalize("NFKC", unquote(parsed.raw_host)).lower()
    try:
        literal = parse_ip_literal(host)
    except ValueError:
        return "must have a valid host"
    if literal is None and not _HOST_NAME.fullmatch(host):
        return "must have a valid host"
    if literal is not None and NetworkGuard(allowed_networks).is_blocked(literal):
        return f"must not point to a blocked address ({literal})"
    return None


__all__ = [
    "BLOCKED_IPV4_NETWORKS",
    "BLOCKED_IPV6_NETWORKS",
    "NetworkGuard",
    "check_url",
    "embedded_ipv4",
    "parse_ip_literal",
]
