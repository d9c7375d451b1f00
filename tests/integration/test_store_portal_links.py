"""Portal links in the store, on both engines: stored by the token's hash, consumed at
most once (also by two processes racing on one PostgreSQL database), refused once
expired, and ended early by `expire_portal_link`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from orderhooks.domain.ids import new_id
from orderhooks.domain.model import Scope
from orderhooks.domain.portal import PortalLink, generate_portal_token, hash_portal_token
from orderhooks.exceptions import NotFound
from orderhooks.store.postgres import PostgresStore
from orderhooks.store.store import Store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RACERS = 16


def _link(token: str, accounts: tuple[str, ...] = ("acct-a", "acct-b")) -> PortalLink:
    return PortalLink(
        id=new_id("plk"),
        token_hash=hash_portal_token(token),
        accounts=accounts,
        created_by="key_creator",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )


async def test_a_link_is_found_by_its_hash_and_consumed_once(store: Store) -> None:
    token = generate_portal_token()
    link = await store.create_portal_link(_link(token))
    assert await store.portal_link_by_token(hash_portal_token(token)) == link
    assert await store.portal_link_by_token(token) is None  # the plaintext is not stored
    assert await store.portal_link_by_id(link.id) == link

    used = await store.consume_portal_link(hash_portal_token(token), NOW + timedelta(minutes=1))
    assert used is not None and used.used_at == NOW + timedelta(minutes=1)
    assert used.accounts == ("acct-a", "acct-b") and used.expires_at == link.expires_at
    assert await store.consume_portal_link(hash_portal_token(token), NOW) is None
    assert await store.portal_link_by_id(link.id) == used
    assert await store.consume_portal_link(hash_portal_token("ohp_unknown"), NOW) is None
    assert await store.consume_portal_link("\x00", NOW) is None
    assert await store.portal_link_by_token("\x00") is None


async def test_an_expired_link_is_not_consumed(store: Store) -> None:
    token = generate_portal_token()
    link = await store.create_portal_link(_link(token))
    assert await store.consume_portal_link(hash_portal_token(token), link.expires_at) is None
    found = await store.portal_link_by_id(link.id)
    assert found is not None and found.used_at is None


async def test_expire_ends_a_link_early_never_later(store: Store) -> None:
    token = generate_portal_token()
    link = await store.create_portal_link(_link(token))
    kept = await store.expire_portal_link(link.id, NOW + timedelta(days=3), Scope())
    assert kept.expires_at == link.expires_at
    assert (await store.portal_link_by_id(link.id)).expires_at == link.expires_at  # type: ignore[union-attr]
    returned = await store.expire_portal_link(link.id, NOW + timedelta(minutes=5), Scope())
    ended = await store.portal_link_by_id(link.id)
    assert ended is not None and ended.expires_at == NOW + timedelta(minutes=5)
    assert returned == ended
    assert not ended.usable(NOW + timedelta(minutes=5))
    later = NOW + timedelta(minutes=6)
    assert await store.consume_portal_link(hash_portal_token(token), later) is None
    with pytest.raises(NotFound):
        await store.expire_portal_link("plk_missing", NOW, Scope())


async def test_expire_is_refused_outside_the_scope_as_unknown(store: Store) -> None:
    link = await store.create_portal_link(_link(generate_portal_token()))
    with pytest.raises(NotFound):
        await store.expire_portal_link(link.id, NOW, Scope(frozenset({"someone-else"})))
    assert (await store.portal_link_by_id(link.id)).expires_at == link.expires_at  # type: ignore[union-attr]
    mine = Scope(frozenset(link.accounts))
    assert (await store.expire_portal_link(link.id, NOW, mine)).expires_at == NOW


async def test_concurrent_consumes_have_one_winner(store: Store) -> None:
    token = generate_portal_token()
    await store.create_portal_link(_link(token))
    results = await asyncio.gather(
        *(store.consume_portal_link(hash_portal_token(token), NOW) for _ in range(RACERS))
    )
    assert sum(r is not None for r in results) == 1


@pytest.mark.postgres
async def test_two_processes_racing_for_links_each_get_it_once(pg_url: str) -> None:
    """Two stores (two processes) on one database open the same links at the same time,
    on many connections each: every link is used exactly once."""
    options = {"require_agreement": False, "disable_after_seconds": 3600, "pool_size": 8}
    first, second = PostgresStore(pg_url, **options), PostgresStore(pg_url, **options)
    await first.open()
    await second.open()
    await first.migrate()
    try:
        tokens = [generate_portal_token() for _ in range(20)]
        for token in tokens:
            await first.create_portal_link(_link(token, ("acct-race",)))
        for token in tokens:
            digest = hash_portal_token(token)
            racers = [s.consume_portal_link(digest, NOW) for _ in range(4) for s in (first, second)]
            results = await asyncio.gather(*racers)
            winners = [r for r in results if r is not None]
            assert len(winners) == 1, token
            assert winners[0].used_at == NOW
    finally:
        await first.close()
        await second.close()
