"""The API key cache over a store that counts its lookups: hits within the time to live,
unknown keys never cached, revoked keys forgotten at once, a bounded size, and a second,
exact comparison of the hash."""

from __future__ import annotations

from datetime import UTC, datetime

from orderhooks.domain.apikeys import generate_api_key, hash_api_key
from orderhooks.domain.model import ApiKey, Role
from orderhooks.store import Store
from orderhooks.web.auth import KEY_CACHE_MAX_ENTRIES, KEY_CACHE_SECONDS, KeyCache
from tests.support.factories import ManualClock

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class KeyStore:
    """The one store method the cache calls, over a dict, counting the calls."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.lookups = 0

    def add(self, plaintext: str, key_id: str = "key_1", key_hash: str | None = None) -> ApiKey:
        key = ApiKey(key_id, Role.ADMIN, (), key_id, key_hash or hash_api_key(plaintext), NOW)
        self.keys[hash_api_key(plaintext)] = key
        return key

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return self.keys.get(key_hash)


def cache(
    store: KeyStore,
    clock: ManualClock,
    ttl_seconds: float = KEY_CACHE_SECONDS,
    max_entries: int = KEY_CACHE_MAX_ENTRIES,
) -> KeyCache:
    fake: Store = store  # type: ignore[assignment]  # only key_by_hash is called
    return KeyCache(fake, ttl_seconds, max_entries, clock)


async def test_a_known_key_is_read_once_within_the_ttl() -> None:
    store, clock = KeyStore(), ManualClock()
    plaintext = generate_api_key()
    key = store.add(plaintext)
    keys = cache(store, clock, ttl_seconds=2.0)
    assert await keys.lookup(plaintext) == key
    clock.now += 1.9
    assert await keys.lookup(plaintext) == key
    assert store.lookups == 1
    clock.now += 0.1
    assert await keys.lookup(plaintext) == key
    assert store.lookups == 2


async def test_unknown_keys_are_never_cached() -> None:
    store, clock = KeyStore(), ManualClock()
    plaintext = generate_api_key()
    keys = cache(store, clock)
    assert await keys.lookup(plaintext) is None
    key = store.add(plaintext)  # created elsewhere: works at once
    assert await keys.lookup(plaintext) == key
    assert store.lookups == 2


async def test_a_key_changed_elsewhere_is_seen_after_the_ttl() -> None:
    store, clock = KeyStore(), ManualClock()
    plaintext = generate_api_key()
    store.add(plaintext)
    keys = cache(store, clock, ttl_seconds=2.0)
    await keys.lookup(plaintext)
    store.keys.clear()  # revoked and purged by another process
    assert await keys.lookup(plaintext) is not None
    clock.now += 2.0
    assert await keys.lookup(plaintext) is None


async def test_forget_drops_a_key_at_once() -> None:
    store, clock = KeyStore(), ManualClock()
    one, two = generate_api_key(), generate_api_key()
    store.add(one, "key_1")
    store.add(two, "key_2")
    keys = cache(store, clock)
    await keys.lookup(one)
    await keys.lookup(two)
    keys.forget("key_1")
    keys.forget("key_unknown")
    await keys.lookup(one)
    await keys.lookup(two)
    assert store.lookups == 3


async def test_the_oldest_entry_goes_when_the_cache_is_full() -> None:
    store, clock = KeyStore(), ManualClock()
    plaintexts = [generate_api_key() for _ in range(3)]
    for n, plaintext in enumerate(plaintexts):
        store.add(plaintext, f"key_{n}")
    keys = cache(store, clock, max_entries=2)
    for plaintext in plaintexts:
        await keys.lookup(plaintext)
    assert store.lookups == 3
    await keys.lookup(plaintexts[2])
    await keys.lookup(plaintexts[1])
    assert store.lookups == 3
    await keys.lookup(plaintexts[0])
    assert store.lookups == 4


async def test_a_loose_match_of_the_store_lets_nobody_in() -> None:
    store, clock = KeyStore(), ManualClock()
    plaintext = generate_api_key()
    store.add(plaintext, key_hash=hash_api_key("another key"))
    keys = cache(store, clock)
    assert await keys.lookup(plaintext) is None
    assert await keys.lookup(plaintext) is None  # also when it comes from the cache
