"""Kinds of setting values: how the text of a variable or flag becomes a value.

A kind parses text (raising ValueError that says what the text must be), says in words
which values are valid (for docs/configuration.md), and tells the command line how to show
and convert its flag.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from orderhooks.domain.apikeys import presented_key
from orderhooks.exceptions import ConfigError
from orderhooks.secretbox import ENV_VAR as ENCRYPTION_ENV_VAR
from orderhooks.secretbox import SealingKey, parse_keys
from orderhooks.sources.config import SourceConfig, parse_sources

T = TypeVar("T")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The longest wait of a retry schedule, the server's or a webhook's: seven days.
MAX_RETRY_DELAY_SECONDS = 7 * 86_400
DECIMAL_INTEGER = re.compile(r"-?[0-9]+")  # ASCII only: `\d` takes every script's digits
# A decimal number as written in a configuration: digits with an optional fraction and
# exponent (`0.5`, `.25`, `1e-3`), ASCII only.
DECIMAL_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Kind(Generic[T]):
    """What a setting holds: how its text becomes a value (or a ValueError saying what it
    must be), the valid values in words, and how the command line shows and converts it."""

    parse: Callable[[str], T]
    values: str  # for the docs' table
    metavar: str  # the flag's placeholder in `--help`
    # Two valid texts of different values; the tests set them for every setting.
    samples: tuple[str, str]
    show: Callable[[Any], str] = str  # a value as the text `parse` reads back
    # The type the command line converts a flag's text to; `parse` then reads `str()` of it.
    flag_type: type = str


def _bound(value: float) -> str:
    # Whole numbers in full: `:g` alone writes 3153600000 as 3.1536e+09.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bounds(minimum: float, maximum: float | None) -> str:
    if maximum is None:
        return f"at least {_bound(minimum)}"
    return f"{_bound(minimum)} to {_bound(maximum)}"


def decimal_integer(text: str) -> int:
    """ASCII decimal digits, with a leading minus for a negative number, as an int;
    ValueError for anything else. int() alone would also take underscores (`1_000`), a
    plus sign, surrounding whitespace and the digits of other scripts (`٨٠٨٠`)."""
    if DECIMAL_INTEGER.fullmatch(text) is None:
        raise ValueError(f"not a decimal integer: {text!r}")
    return int(text)


def integer(minimum: int = 0, maximum: int | None = None) -> Kind[int]:
    """A whole number from `minimum` to `maximum`, in plain decimal digits."""

    def parse(text: str) -> int:
        try:
            value = decimal_integer(text)
        except ValueError:
            raise ValueError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}, got {value}")
        return value

    values = f"integer, {_bounds(minimum, maximum)}"
    return Kind(parse, values, "INTEGER", (str(minimum + 1), str(minimum + 2)))


def number(minimum: float = 0.0, maximum: float | None = None) -> Kind[float]:
    """A finite decimal number from `minimum` to `maximum`."""

    def parse(text: str) -> float:
        # float() alone would also take underscores, surrounding whitespace, other
        # scripts' digits and the words inf and nan.
        if DECIMAL_NUMBER.fullmatch(text) is None:
            raise ValueError(f"must be a number, got {text!r}")
        value = float(text)
        if not math.isfinite(value) or value < minimum:
            raise ValueError(f"must be a number of at least {minimum:g}, got {text!r}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum:g}, got {text!r}")
        return value

    step = 1.0 if maximum is None else (maximum - minimum) / 4
    samples = (str(minimum + step), str(minimum + 2 * step))
    return Kind(parse, f"number, {_bounds(minimum, maximum)}", "NUMBER", samples)


def choice(*options: str) -> Kind[str]:
    """One of `options`."""
    spelled = " or ".join(options)

    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be {spelled}, got {text!r}")
        return text

    in_code = " or ".join(f"`{option}`" for option in options)
    return Kind(parse, in_code, "|".join(options), (options[0], options[1]))


def _parse_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _parse_seconds_list(text: str) -> tuple[int, ...]:
    # Every entry a wait: an empty variable is unset, so `,` or spaces read as no waits
    # would silently mean no retries at all, and `5,,60` is a typo, not two waits.
    try:
        values = tuple(decimal_integer(part.strip(" ")) for part in text.split(","))
    except ValueError:
        raise ValueError(f"must be comma-separated seconds, got {text!r}") from None
    if any(value < 0 for value in values):
        raise ValueError(f"must not have negative entries, got {text!r}")
    # A wait too long for a date to hold would fail every retry decision (the delivery
    # stuck in `delivering`); a webhook's own schedule has the same bound.
    if any(value > MAX_RETRY_DELAY_SECONDS for value in values):
        raise ValueError(f"must not have entries over {MAX_RETRY_DELAY_SECONDS}, got {text!r}")
    return values


def parse_network_list(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs; host bits are allowed and dropped."""
    networks = []
    for part in (part.strip() for part in text.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"must be comma-separated networks, not {part!r}") from None
    return tuple(networks)


def parse_egress_proxy(text: str) -> str:
    """An `http://host:port` forward proxy URL (credentials allowed, nothing after the port)."""
    from yarl import URL as Yarl

    try:
        url = Yarl(text.strip())
        # The port as written: `port` would give http's 80 for a URL without one.
        port = url.explicit_port
    except ValueError:
        raise ValueError("must be an http://host:port URL") from None
    if url.scheme != "http":
        raise ValueError(f"must be an http:// proxy URL, got scheme {url.scheme!r}")
    if not url.raw_host or port is None or port == 0:
        raise ValueError("must be http://host:port, with a port from 1 to 65535")
    if url.raw_path not in ("", "/") or url.raw_query_string or url.fragment:
        raise ValueError("must be http://host:port, with nothing after the port")
    return str(url.with_path(""))


SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_DATABASE_URL_FORMS = "sqlite:///path or postgresql://user:password@host:5432/name"


def parse_database_url(text: str) -> str:
    """A `sqlite:///path` or `postgresql://…` URL, kept as it is. Refused here rather than
    when the store opens: a bad port was a traceback there. Messages never quote the URL,
    which may hold a password."""
    if text.startswith(SQLITE_PREFIX):
        if not text.removeprefix(SQLITE_PREFIX):
            raise ValueError("must name a file: sqlite:///path")
        return text
    if not text.startswith(POSTGRES_PREFIXES):
        scheme = text.partition("://")[0] if "://" in text else ""
        got = f", got scheme {scheme!r}" if scheme and scheme.isalnum() else ""
        raise ValueError(f"must be {_DATABASE_URL_FORMS}{got}")
    netloc = text.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    hosts = netloc.rpartition("@")[2]  # several hosts (h1:5432,h2:5433) are allowed
    if hosts and not all(_valid_host_port(part) for part in hosts.split(",")):
        raise ValueError("must be a postgresql:// URL with valid hosts and ports (1 to 65535)")
    return text


def _valid_host_port(part: str) -> bool:
    if part.startswith("["):
        host, bracket, port = part[1:].partition("]")
        if not bracket or not host:
            return False
        if port and not port.startswith(":"):
            return False
        port = port[1:]
    else:
        host, _, port = part.partition(":")
        if not host or "[" in part or "]" in part:
            return False
    if not port:
        return True
    return port.isascii() and port.isdigit() and 0 < int(port) <= 65535


def _parse_sources(text: str) -> tuple[SourceConfig, ...]:
    try:
        return parse_sources(text)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _show_sources(values: Sequence[SourceConfig]) -> str:
    return " ".join(source.display_url for source in values)


_CSP_KEYWORDS = ("'none'", "'self'")
_CSP_SCHEME_SOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:$")
_CSP_HOST_SOURCE = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9+.\-]*://)?"  # scheme
    r"(?:\*|(?:\*\.)?[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*)"  # host, maybe a wildcard
    r"(?::(?:[0-9]{1,5}|\*))?"  # port
    r"(?:/[A-Za-z0-9\-._~!$&+=:@%/]*)?$"  # path
)


def parse_frame_ancestors(text: str) -> str:
    """A CSP `frame-ancestors` source list: `'none'` alone, or `'self'`, schemes
    (`https:`) and host sources (`https://*.example.com:443`), separated by spaces.

    Anything that could end the directive or add another (`;`, `,`, a line break) or that
    CSP does not define for frame-ancestors is refused, so the value cannot change the
    rest of the policy."""
    for forbidden, name in ((";", "';'"), (",", "','"), ("\n", "a line break")):
        if forbidden in text:
            raise ValueError(f"must be a space-separated CSP source list without {name}")
    if re.search(r"[^\x21-\x7e ]", text):
        raise ValueError("must be printable ASCII sources separated by spaces")
    sources = text.split()
    if not sources:
        raise ValueError("must name at least one source, or 'none'")
    for source in sources:
        keyword = source.lower()
        if keyword in _CSP_KEYWORDS:
            continue
        if source.startswith("'") or not (
            _CSP_SCHEME_SOURCE.match(source) or _CSP_HOST_SOURCE.match(source)
        ):
            raise ValueError(
                f"{source!r} is not a frame-ancestors source ('none', 'self', a scheme such "
                "as https:, or a host such as https://portal.example.com)"
            )
    lowered = [source.lower() if source.lower() in _CSP_KEYWORDS else source for source in sources]
    if "'none'" in lowered and len(lowered) > 1:
        raise ValueError("'none' must be the only source")
    return " ".join(lowered)


def _control_character_at(text: str) -> int | None:
    """The position of the first character an HTTP header value cannot carry (an ASCII
    control character other than a tab, or DEL), or None."""
    for position, character in enumerate(text):
        code = ord(character)
        if (code < 0x20 and character != "\t") or code == 0x7F:
            return position
    return None


def parse_admin_key(text: str) -> str:
    """An admin key a client can present in `Authorization: Bearer <key>`: not blank, and
    without control characters once the whitespace around it (which HTTP drops) is left
    out. A blank key was taken as none (a key generated instead), one with a control
    character was stored though no request can carry it: the admin locked out. Messages
    never quote the key."""
    key = presented_key(text)
    if not key:
        raise ValueError("must not be blank: unset it to have a key made on the first start")
    position = _control_character_at(key)
    if position is not None:
        raise ValueError(
            f"must not hold control characters (character {position + 1} of the key is one): "
            "no HTTP request can carry them"
        )
    return text


def _show_list(values: Sequence[object]) -> str:
    return ",".join(str(value) for value in values)


TEXT: Kind[str] = Kind(str, "text", "TEXT", ("first", "second"))
ADMIN_KEY: Kind[str] = Kind(
    parse_admin_key,
    "text without control characters; the whitespace around it is left out",
    "TEXT",
    ("first", "second"),
)
DATABASE_URL: Kind[str] = Kind(
    parse_database_url,
    "`sqlite:///path` or `postgresql://…` URL",
    "URL",
    ("sqlite:///first.db", "postgresql://127.0.0.1/second"),
)
PATH: Kind[Path] = Kind(Path, "path", "PATH", ("/srv/first", "/srv/second"), flag_type=Path)
BOOLEAN: Kind[bool] = Kind(
    _parse_boolean,
    "`true` or `false`",
    "",
    ("true", "false"),
    show=lambda value: str(value).lower(),
    flag_type=bool,
)
SECONDS_LIST: Kind[tuple[int, ...]] = Kind(
    _parse_seconds_list,
    f"seconds (integers, 0 to {MAX_RETRY_DELAY_SECONDS:,}), comma-separated",
    "SECONDS,…",
    ("1,2", "30"),
    show=_show_list,
)
NETWORKS: Kind[tuple[Network, ...]] = Kind(
    parse_network_list,
    "networks (CIDR, IPv4 or IPv6), comma-separated",
    "CIDR,…",
    ("10.0.0.0/8", "127.0.0.0/8,::1/128"),
    show=_show_list,
)
PROXY_URL: Kind[str] = Kind(
    parse_egress_proxy,
    "`http://host:port` (credentials allowed)",
    "URL",
    ("http://127.0.0.1:3128", "http://egress.internal:8888"),
)
SOURCES: Kind[tuple[SourceConfig, ...]] = Kind(
    _parse_sources,
    "broker URLs (`nats://…`, `amqp://…`), space-separated; see docs/operations.md",
    "URL …",
    (
        "nats://127.0.0.1:4222/ORDERS?subject=orders.>&durable=orderhooks",
        "amqp://127.0.0.1:5672/?queue=orders",
    ),
    show=_show_sources,
)
FRAME_ANCESTORS: Kind[str] = Kind(
    parse_frame_ancestors,
    "CSP `frame-ancestors` sources: `'none'`, `'self'`, schemes, hosts; space-separated",
    "SOURCES",
    ("'self'", "'self' https://portal.example.com"),
)


def _parse_encryption_keys(text: str) -> tuple[SealingKey, ...]:
    try:
        return parse_keys(text)
    except ConfigError as exc:
        # The caller names the variable (parse_keys names it too, with or without a
        # colon: named once); the message never holds a key.
        message = str(exc).removeprefix(ENCRYPTION_ENV_VAR).removeprefix(":").lstrip()
        raise ValueError(message) from None


ENCRYPTION_KEYS: Kind[tuple[SealingKey, ...]] = Kind(
    _parse_encryption_keys,
    "comma-separated keys, each 32 random bytes in standard base64",
    "KEYS",
    (
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ),
    show=lambda keys: ",".join(k.id for k in keys),
)
