"""Test helpers shipped with the package: a programmable receiver and the server as a process.

`orderhooks.testing.receiver.Receiver` records and answers webhook requests on
127.0.0.1; `orderhooks.testing.server.ServerProcess` runs `python -m orderhooks serve`
on a data dir. Both are used by the end-to-end and fault suites in `tests/e2e`.
"""

from __future__ import annotations

from orderhooks.testing.receiver import Receiver
from orderhooks.testing.recording import Behaviour, ReceivedRequest, Reply, ReplyKind
from orderhooks.testing.server import ServerError, ServerProcess, free_port
from orderhooks.testing.signatures import hex_signature, signature_problem

__all__ = [
    "Behaviour",
    "ReceivedRequest",
    "Receiver",
    "Reply",
    "ReplyKind",
    "ServerError",
    "ServerProcess",
    "free_port",
    "hex_signature",
    "signature_problem",
]
