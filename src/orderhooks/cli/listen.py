"""The HTTP listening sockets of `serve`, `api` and `worker`, opened before anything runs.

uvicorn binds its address only once the process is up, the delivery workers and the
sender processes included: an address it could not have (a port in use, a host that
does not resolve) then stopped a process that had already started sending, with
nothing but uvicorn's own log line to say why. The runner opens the sockets here first,
so such a start stops with one `orderhooks:` line and nothing to undo but the store,
and hands them to uvicorn.
"""

from __future__ import annotations

import socket

from orderhooks.exceptions import StartError

# uvicorn's own default: connections waiting to be accepted, per socket.
LISTEN_BACKLOG = 2048


def address_text(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_listeners(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on every address `host` names (one for `127.0.0.1`, two for a
    name with an IPv4 and an IPv6 address), as asyncio's `create_server` would open them;
    a StartError naming the address and the settings when one cannot be opened."""
    try:
        found = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
    except OSError as exc:  # socket.gaierror: a name that does not resolve
        raise _cannot_listen(host, port, exc) from None
    # getaddrinfo may name one address twice (once per /etc/hosts line, say).
    addresses = dict.fromkeys(
        (family, kind, proto, address) for family, kind, proto, _, address in found
    )
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, address in addresses:
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            # As asyncio does: a restart may bind while the last process's connections
            # are in TIME_WAIT, and an IPv6 socket does not take the IPv4 addresses too.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            # Listening at once, not only bound: two processes bound with SO_REUSEADDR
            # would both succeed here, and the second would fail later, half started.
            sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        close_listeners(listeners)
        raise _cannot_listen(host, port, exc) from None
    return listeners


def close_listeners(listeners: list[socket.socket]) -> None:
    """Close the sockets (closing one twice is harmless)."""
    for sock in listeners:
        sock.close()


def _cannot_listen(host: str, port: int, exc: OSError) -> StartError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return StartError(
        f"cannot listen on {address_text(host, port)} (ORDERHOOKS_HOST, ORDERHOOKS_PORT): "
        f"{reason[:1].lower()}{reason[1:]}"
    )


__all__ = ["LISTEN_BACKLOG", "address_text", "close_listeners", "open_listeners"]
