"""The stored excerpt of a receiver's answer (the transport's sending is tested in
tests/integration/test_transport.py)."""

from __future__ import annotations

from orderhooks.delivery.transport import decode_excerpt


def test_a_nul_in_the_answer_is_stored_as_a_replacement_character() -> None:
    assert decode_excerpt(b"ok\x00bad") == "ok\ufffdbad"
