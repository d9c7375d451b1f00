"""Signatures: known answers computed independently, and the standardwebhooks verifier."""

from __future__ import annotations

import base64
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook as StandardWebhook

from orderhooks.delivery.signing import (
    generate_secret,
    hex_body_hmac,
    is_valid_secret,
    sign,
    signature_headers,
    verify,
)

# A fixed secret (key = bytes 0..31), an older one (24 bytes), id, timestamp and body.
SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
OLD_SECRET = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7"
MESSAGE_ID = "evt_01JDQ7ZK8V1E2M3N4P5Q6R7S8T"
TIMESTAMP = 1_795_867_200  # 2026-11-28T12:00:00Z
BODY = b'{"id":"evt_01JDQ7ZK8V1E2M3N4P5Q6R7S8T","type":"order.new"}'

# Computed once with standardwebhooks.Webhook.sign and a hashlib-only HMAC, then fixed.
EXPECTED_V1 = "v1,RWCrWzKhFlJsyZeDyC0WH5ycGT7s+KvTwCoWggXqleY="
EXPECTED_OLD_V1 = "v1,IjzbQ7heK3RlKRaeZflh+lpoiWlQ7M6i+InQWVhkSZ4="
EXPECTED_HEX = "7d35da787964287df5307a27f256b8ab5204eae078bccdc59ecbf4b618418b0a"


def test_known_answer_one_secret() -> None:
    assert signature_headers([SECRET], MESSAGE_ID, TIMESTAMP, BODY) == {
        "webhook-id": MESSAGE_ID,
        "webhook-timestamp": "1795867200",
        "webhook-signature": EXPECTED_V1,
        "x-server-authorization-hmac-sha256": EXPECTED_HEX,
    }


def test_known_answer_during_rotation_newest_first_hex_by_newest() -> None:
    headers = signature_headers([SECRET, OLD_SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    assert headers["webhook-signature"] == f"{EXPECTED_V1} {EXPECTED_OLD_V1}"
    assert headers["x-server-authorization-hmac-sha256"] == EXPECTED_HEX


def test_sign_and_hex_helpers_match_the_known_answers() -> None:
    assert sign(SECRET, MESSAGE_ID, TIMESTAMP, BODY) == EXPECTED_V1
    assert hex_body_hmac(SECRET, BODY) == EXPECTED_HEX


def test_standardwebhooks_accepts_our_headers() -> None:
    # The package checks the timestamp against its own clock: sign for now.
    now = int(time.time())
    headers = signature_headers([SECRET, OLD_SECRET], MESSAGE_ID, now, BODY)
    assert StandardWebhook(SECRET).verify(BODY, headers) is not None
    assert StandardWebhook(OLD_SECRET).verify(BODY, headers) is not None


def test_standardwebhooks_rejects_a_changed_body() -> None:
    headers = signature_headers([SECRET], MESSAGE_ID, int(time.time()), BODY)
    with pytest.raises(Exception, match="signature"):
        StandardWebhook(SECRET).verify(BODY + b" ", headers)


def test_verify_accepts_our_own_headers() -> None:
    headers = signature_headers([SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    assert verify(SECRET, headers, BODY, now=TIMESTAMP + 10)


def test_verify_reads_header_names_in_any_case() -> None:
    headers = signature_headers([SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    shouting = {name.upper(): value for name, value in headers.items()}
    assert verify(SECRET, shouting, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-signature", "v1,AAAA"),
        ("webhook-signature", ""),
        ("webhook-id", "evt_other"),
        ("webhook-timestamp", "1795867201"),
        ("webhook-timestamp", "soon"),
        ("x-server-authorization-hmac-sha256", "00" * 32),
        ("x-server-authorization-hmac-sha256", ""),
    ],
)
def test_verify_rejects_any_changed_header(name: str, value: str) -> None:
    headers = signature_headers([SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    headers[name] = value
    assert not verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_verify_rejects_missing_headers_a_changed_body_and_a_wrong_secret() -> None:
    headers = signature_headers([SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    assert not verify(SECRET, headers, BODY + b"x", now=TIMESTAMP)
    assert not verify(OLD_SECRET, headers, BODY, now=TIMESTAMP)
    assert not verify("not a secret", headers, BODY, now=TIMESTAMP)
    for name in headers:
        partial = {k: v for k, v in headers.items() if k != name}
        assert not verify(SECRET, partial, BODY, now=TIMESTAMP)


def test_verify_enforces_the_timestamp_tolerance() -> None:
    headers = signature_headers([SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    assert verify(SECRET, headers, BODY, tolerance_seconds=300, now=TIMESTAMP + 300)
    assert verify(SECRET, headers, BODY, tolerance_seconds=300, now=TIMESTAMP - 300)
    assert not verify(SECRET, headers, BODY, tolerance_seconds=300, now=TIMESTAMP + 301)
    assert not verify(SECRET, headers, BODY, tolerance_seconds=300, now=TIMESTAMP - 301)


def test_verify_during_rotation_accepts_the_newest_secret() -> None:
    headers = signature_headers([SECRET, OLD_SECRET], MESSAGE_ID, TIMESTAMP, BODY)
    assert verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        signature_headers([], MESSAGE_ID, TIMESTAMP, BODY)


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    secret = generate_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert is_valid_secret(secret)
    assert generate_secret() != secret


@pytest.mark.parametrize("size", [24, 32, 64])
def test_secret_sizes_that_pass(size: int) -> None:
    assert is_valid_secret("whsec_" + base64.b64encode(bytes(size)).decode())


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_" + base64.b64encode(bytes(23)).decode(),
        "whsec_" + base64.b64encode(bytes(65)).decode(),
        base64.b64encode(bytes(32)).decode(),  # no prefix
        "whsec_" + base64.b64encode(bytes(32)).decode().rstrip("="),  # padding missing
        "whsec_" + "!" * 44,
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # not standard base64
        "",
    ],
)
def test_secrets_that_are_refused(secret: str) -> None:
    assert not is_valid_secret(secret)


@given(st.binary(min_size=24, max_size=64), st.binary(max_size=300), st.integers(0, 2**40))
def test_sign_then_verify_round_trips(key: bytes, body: bytes, timestamp: int) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    headers = signature_headers([secret], "evt_x", timestamp, body)
    assert verify(secret, headers, body, now=timestamp)
