"""Portal link tokens and the two questions a link answers: may it be opened, and may
the session it opened go on (pure)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

from orderhooks.domain.portal import PortalLink, generate_portal_token, hash_portal_token

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _link(used_at: datetime | None = None) -> PortalLink:
    return PortalLink(
        id="plk_1",
        token_hash="0" * 64,
        accounts=("acct-a",),
        created_by="key_1",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        used_at=used_at,
    )


def test_tokens_are_random_and_stored_as_their_sha256() -> None:
    tokens = {generate_portal_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(re.fullmatch(r"ohp_[A-Za-z0-9_-]{43}", token) for token in tokens)
    token = "ohp_known"
    assert hash_portal_token(token) == hashlib.sha256(b"ohp_known").hexdigest()


def test_a_link_opens_until_it_is_used_or_expires() -> None:
    link = _link()
    assert link.usable(NOW) and link.usable(link.expires_at - timedelta(microseconds=1))
    assert not link.usable(link.expires_at)
    assert not _link(used_at=NOW).usable(NOW)


def test_its_session_lasts_from_use_to_expiry() -> None:
    assert not _link().session_open(NOW)  # never opened: no session
    used = _link(used_at=NOW)
    assert used.session_open(NOW + timedelta(minutes=59))
    assert not used.session_open(used.expires_at)
