"""Broker source URLs (`ORDERHOOKS_SOURCES`, docs/configuration.md): parsed once, at start.

Pure: no broker library is imported here, so the configuration can be read (and refused)
without connecting anywhere. Errors never repeat a password: they quote the URL as
`SourceConfig.display_url` would show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from orderhooks.exceptions import ConfigError

SourceKind = Literal["nats", "amqp"]

NATS_SCHEMES = frozenset({"nats", "tls"})
AMQP_SCHEMES = frozenset({"amqp", "amqps"})
NATS_PARAMETERS = frozenset({"subject", "durable"})
AMQP_PARAMETERS = frozenset({"queue"})
DEFAULT_PORTS = {"nats": 4222, "tls": 4222, "amqp": 5672, "amqps": 5671}
DEAD_LETTER_SUFFIX = ".dead"
HIDDEN = "***"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One broker source: where to connect and what to consume.

    `connect_url` carries the credentials and is handed to the broker client only;
    `display_url` is what logs, errors and `GET /v1/sources` show.
    """

    id: str
    kind: SourceKind
    connect_url: str
    display_url: str
    stream: str = ""  # NATS: the JetStream stream
    subject: str = ""  # NATS: the consumer's filter subject
    durable: str = ""  # NATS: the durable consumer's name
    queue: str = ""  # RabbitMQ: the queue consumed

    def __repr__(self) -> str:
        # Never the connect URL: a repr ends up in logs and tracebacks.
        return f"SourceConfig(id={self.id!r}, url={self.display_url!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password or token of the URL, to be scrubbed from any error text."""
        parts = urlsplit(self.connect_url)
        found = [parts.password, parts.username if self.kind == "nats" else None]
        return tuple(unquote(s) for s in found if s and len(s) > 2)

    @property
    def dead_letter_queue(self) -> str:
        """RabbitMQ: the queue orderhooks declares for dead letters."""
        return self.queue + DEAD_LETTER_SUFFIX


def _display(scheme: str, user: str | None, password: str | None, netloc_host: str) -> str:
    if user is None:
        return netloc_host
    if password is None and scheme in NATS_SCHEMES:
        return f"{HIDDEN}@{netloc_host}"  # a lone NATS user part is a token: a secret
    return f"{quote(unquote(user), safe='')}@{netloc_host}"


def _host_port(scheme: str, hostname: str | None, port: int | None) -> str:
    if not hostname:
        raise ConfigError("has no host")
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"{host}:{port or DEFAULT_PORTS[scheme]}"


def _single_parameters(query: str, allowed: frozenset[str], display: str) -> dict[str, str]:
    parsed = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(parsed) - allowed)
    if unknown:
        raise ConfigError(f"{display}: unknown parameter {unknown[0]!r}")
    out: dict[str, str] = {}
    for name, values in parsed.items():
        if len(values) != 1 or not values[0]:
            raise ConfigError(f"{display}: parameter {name!r} must be given once, not empty")
        out[name] = values[0]
    return out


def _required(params: dict[str, str], name: str, display: str) -> str:
    value = params.get(name)
    if not value:
        raise ConfigError(f"{display}: missing parameter {name!r}")
    return value


def parse_source(raw: str) -> SourceConfig:
    """One source URL; ConfigError (quoting the URL without secrets) when it is unusable."""
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ConfigError("a source URL is malformed (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in NATS_SCHEMES | AMQP_SCHEMES:
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        raise ConfigError(f"unsupported source {shown} (use nats:// or amqp://)")
    try:
        host_port = _host_port(scheme, parts.hostname, port)
    except ConfigError as exc:
        raise ConfigError(f"{scheme}:// source {exc}") from None
    netloc = _display(scheme, parts.username, parts.password, host_port)
    path = parts.path.lstrip("/")
    display = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    # The client gets the URL without our parameters: they are not connection options.
    connect_url = urlunsplit((scheme, parts.netloc, "", "", ""))
    if scheme in NATS_SCHEMES:
        params = _single_parameters(parts.query, NATS_PARAMETERS, display)
        stream = unquote(path)
        if not stream or "/" in stream:
            raise ConfigError(f"{display}: missing the stream name (nats://host:4222/STREAM)")
        subject = _required(params, "subject", display)
        durable = _required(params, "durable", display)
        return SourceConfig(
            id=f"nats:{stream}:{durable}",
            kind="nats",
            connect_url=connect_url,
            display_url=display,
            stream=stream,
            subject=subject,
            durable=durable,
        )
    params = _single_parameters(parts.query, AMQP_PARAMETERS, display)
    queue = _required(params, "queue", display)
    vhost = unquote(path) or "/"
    connect_url = urlunsplit((scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))
    return SourceConfig(
        id=f"amqp:{vhost.strip('/') or '/'}:{queue}" if vhost != "/" else f"amqp:{queue}",
        kind="amqp",
        connect_url=connect_url,
        display_url=display,
        queue=queue,
    )


def parse_sources(raw: str) -> tuple[SourceConfig, ...]:
    """Space-separated source URLs; ConfigError for a bad one or two with the same id."""
    sources = tuple(parse_source(part) for part in raw.split())
    seen: set[str] = set()
    for source in sources:
        if source.id in seen:
            raise ConfigError(f"source {source.id} is listed twice")
        seen.add(source.id)
    return sources
