"""Sealing stored secrets: round trips, keys, contexts, tampering, rotation, bad keys."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from orderhooks.exceptions import ConfigError, SecretUnreadable
from orderhooks.secretbox import (
    ENV_VAR,
    SecretBox,
    key_id,
    parse_keys,
    seal_context,
    webhook_client_key_context,
    webhook_header_context,
    webhook_secret_context,
)

SECRET = "whsec_c2VjcmV0LXZhbHVlLWZvci10ZXN0cy0xMjM0NTY="
CONTEXT = "webhook_secret:wh_1"


def new_key() -> str:
    """A fresh key as an operator would generate it."""
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def key_a() -> str:
    return new_key()


@pytest.fixture
def key_b() -> str:
    return new_key()


def test_round_trip(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    stored = box.seal(SECRET, CONTEXT)
    assert box.is_sealed(stored)
    assert box.open(stored, CONTEXT) == SECRET


def test_round_trip_of_unicode_and_empty_values(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    for value in ("", "Bearer ünïcødé ✓", "x" * 10_000, "enc:v1:00000000:AAAA"):
        assert box.open(box.seal(value, CONTEXT), CONTEXT) == value


def test_the_stored_form_names_the_key_and_nothing_of_the_plaintext(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    stored = box.seal(SECRET, CONTEXT)
    raw_key = base64.b64decode(key_a)
    prefix, version, kid, payload = stored.split(":")
    assert (prefix, version) == ("enc", "v1")
    assert kid == hashlib.sha256(raw_key).hexdigest()[:8] == key_id(raw_key)
    assert len(base64.b64decode(payload)) == 12 + len(SECRET) + 16
    # No part of the secret survives, in any spelling an attacker might grep for.
    body = SECRET.removeprefix("whsec_")
    for spelling in (SECRET, body, base64.b64decode(body).decode(), key_a):
        for start in range(0, len(spelling) - 8):
            assert spelling[start : start + 8] not in stored


def test_every_seal_uses_a_fresh_nonce(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    sealed = {box.seal(SECRET, CONTEXT) for _ in range(50)}
    assert len(sealed) == 50
    nonces = {base64.b64decode(s.split(":")[3])[:12] for s in sealed}
    assert len(nonces) == 50


def test_a_wrong_key_does_not_open_and_the_error_names_the_variable(key_a: str, key_b: str) -> None:
    stored = SecretBox.from_env(key_a).seal(SECRET, CONTEXT)
    with pytest.raises(SecretUnreadable) as caught:
        SecretBox.from_env(key_b).open(stored, CONTEXT)
    message = str(caught.value)
    assert ENV_VAR in message
    assert key_id(base64.b64decode(key_a)) in message  # the missing key's id
    assert key_a not in message and key_b not in message
    assert isinstance(caught.value, ConfigError)  # refuses to start, like any bad config


def test_a_pass_through_box_cannot_open_sealed_values(key_a: str) -> None:
    stored = SecretBox.from_env(key_a).seal(SECRET, CONTEXT)
    with pytest.raises(SecretUnreadable, match=f"{ENV_VAR} .*no keys"):
        SecretBox().open(stored, CONTEXT)


def test_a_ciphertext_copied_to_another_row_or_column_does_not_open(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    stored = box.seal(SECRET, CONTEXT)
    for elsewhere in ("webhook_secret:wh_2", "webhook_header:wh_1:x-api-key", ""):
        with pytest.raises(SecretUnreadable, match="altered or copied"):
            box.open(stored, elsewhere)


def test_tampering_is_detected_wherever_it_happens(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    stored = box.seal(SECRET, CONTEXT)
    prefix, payload = stored.rsplit(":", 1)
    raw = base64.b64decode(payload)
    for position in (0, 11, 12, len(raw) // 2, len(raw) - 1):  # nonce, body, tag
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        altered = f"{prefix}:{base64.b64encode(bytes(flipped)).decode()}"
        with pytest.raises(SecretUnreadable):
            box.open(altered, CONTEXT)
    with pytest.raises(SecretUnreadable, match="damaged"):
        box.open(f"{prefix}:{base64.b64encode(raw[:20]).decode()}", CONTEXT)
    with pytest.raises(SecretUnreadable, match="damaged"):
        box.open(f"{prefix}:{payload[:-1]}", CONTEXT)  # padding cut off


def test_a_value_relabelled_with_another_key_id_does_not_open(key_a: str, key_b: str) -> None:
    box = SecretBox.from_env(f"{key_a},{key_b}")
    stored = box.seal(SECRET, CONTEXT)
    other_id = key_id(base64.b64decode(key_b))
    relabelled = stored.replace(stored.split(":")[2], other_id)
    with pytest.raises(SecretUnreadable, match="altered or copied"):
        box.open(relabelled, CONTEXT)


def test_unknown_and_damaged_formats_are_errors_not_plaintext(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    for stored in ("enc:v2:abcdef01:AAAA", "enc:v1:XYZ:AAAA", "enc:v1:abcdef01:not base64!"):
        assert box.is_sealed(stored)
        with pytest.raises(SecretUnreadable, match="format"):
            box.open(stored, CONTEXT)


def test_rotation_old_keys_open_the_first_key_seals(key_a: str, key_b: str) -> None:
    old_box = SecretBox.from_env(key_a)
    old_value = old_box.seal(SECRET, CONTEXT)
    rotated = SecretBox.from_env(f"{key_b},{key_a}")
    assert rotated.open(old_value, CONTEXT) == SECRET
    assert rotated.needs_reseal(old_value)
    new_value = rotated.reseal(old_value, CONTEXT)
    assert new_value.split(":")[2] == key_id(base64.b64decode(key_b))
    assert not rotated.needs_reseal(new_value)
    assert rotated.open(new_value, CONTEXT) == SECRET
    # Once resealed, the old key can go.
    assert SecretBox.from_env(key_b).open(new_value, CONTEXT) == SECRET
    # A key listed second only opens; before it moves first it never seals.
    assert SecretBox.from_env(f"{key_a},{key_b}").needs_reseal(new_value)


def test_plaintext_stored_before_encryption_reads_back_and_needs_resealing(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    assert not box.is_sealed(SECRET)
    assert box.open(SECRET, CONTEXT) == SECRET
    assert box.needs_reseal(SECRET)
    assert box.is_sealed(box.reseal(SECRET, CONTEXT))


def test_without_keys_values_pass_through(key_a: str) -> None:
    box = SecretBox.from_env(None)
    assert not box.encrypts
    assert box.seal(SECRET, CONTEXT) == SECRET
    assert box.open(SECRET, CONTEXT) == SECRET
    assert not box.needs_reseal(SECRET)
    assert not box.needs_reseal(SecretBox.from_env(key_a).seal(SECRET, CONTEXT))


def test_without_keys_a_value_that_looks_sealed_reads_back_exactly() -> None:
    box = SecretBox()
    lookalike = "enc:v1:0123abcd:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    stored = box.seal(lookalike, CONTEXT)
    assert stored != lookalike
    assert not box.is_sealed(stored)
    assert box.open(stored, CONTEXT) == lookalike


def test_keys_are_parsed_in_order_with_spaces_allowed(key_a: str, key_b: str) -> None:
    keys = parse_keys(f" {key_a} , {key_b}")
    assert [k.id for k in keys] == [key_id(base64.b64decode(k)) for k in (key_a, key_b)]
    assert SecretBox(keys).key_ids == tuple(k.id for k in keys)
    assert parse_keys(None) == ()


@pytest.mark.parametrize(
    ("bad", "position", "reason"),
    [
        (base64.b64encode(os.urandom(16)).decode(), 2, "is 16 bytes"),
        (base64.b64encode(os.urandom(33)).decode(), 2, "is 33 bytes"),
        (base64.urlsafe_b64encode(b"\xfb" * 32).decode(), 2, "not standard base64"),
        ("not base64 at all!", 2, "not standard base64"),
        (base64.b64encode(os.urandom(32)).decode().rstrip("="), 2, "not standard base64"),
        ("", 2, "is empty"),
    ],
    ids=["16-bytes", "33-bytes", "urlsafe", "garbage", "unpadded", "empty"],
)
def test_a_bad_key_names_the_variable_and_position_never_the_key(
    key_a: str, bad: str, position: int, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keys(f"{key_a},{bad}")
    message = str(caught.value)
    assert message.startswith(f"{ENV_VAR}: key {position} ")
    assert reason in message
    assert key_a not in message
    if bad:
        assert bad not in message
    # Nothing chained either: a traceback printer must not find the key's bytes.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_set_but_empty_variable_is_an_error_not_plaintext() -> None:
    for raw in ("", "  "):
        with pytest.raises(ConfigError, match=f"{ENV_VAR} is set but empty"):
            parse_keys(raw)


def test_the_same_key_twice_is_an_error(key_a: str, key_b: str) -> None:
    with pytest.raises(ConfigError, match="keys 1 and 3 have the same key id"):
        parse_keys(f"{key_a},{key_b},{key_a}")


def test_keys_never_show_in_a_repr(key_a: str) -> None:
    keys = parse_keys(key_a)
    box = SecretBox(keys)
    raw = base64.b64decode(key_a)
    for text in (repr(keys), repr(box), str(box)):
        assert key_a not in text and repr(raw) not in text
    assert keys[0].id in repr(box)


def test_contexts_are_joined_and_checked() -> None:
    assert seal_context("webhook_header", "wh_1", "x-api-key") == "webhook_header:wh_1:x-api-key"
    for bad in ("", "a:b", "a b"):
        with pytest.raises(ValueError, match="context part"):
            seal_context("webhook_secret", bad)


def test_the_webhook_contexts_keep_values_in_their_place(key_a: str) -> None:
    box = SecretBox.from_env(key_a)
    contexts = [
        webhook_secret_context("wh_1"),
        webhook_secret_context("wh_2"),
        webhook_header_context("wh_1", "X-Api-Key"),
        webhook_header_context("wh_1", "Authorization"),
        webhook_client_key_context("wh_1"),
    ]
    assert len(set(contexts)) == len(contexts)
    assert webhook_header_context("wh_1", "X-Api-Key") == webhook_header_context(
        "wh_1", "x-api-key"
    )
    for sealed_in in contexts:
        stored = box.seal(SECRET, sealed_in)
        for read_in in contexts:
            if read_in == sealed_in:
                assert box.open(stored, read_in) == SECRET
            else:
                with pytest.raises(SecretUnreadable):
                    box.open(stored, read_in)
