"""Which secrets a webhook keeps when its secret is rotated: the new one first, the old
ones until the grace period ends (an earlier, shorter expiry stays), expired ones gone."""

from __future__ import annotations

from datetime import timedelta

from orderhooks.domain.model import SigningSecret
from orderhooks.service.webhooks import rotated_secrets
from tests.support.factories import NOW, webhook


def test_the_old_secret_signs_until_the_grace_period_ends() -> None:
    hook = webhook(secrets=(SigningSecret("whsec_old"),))
    assert rotated_secrets(hook, "whsec_new", 3600, NOW) == (
        SigningSecret("whsec_new"),
        SigningSecret("whsec_old", NOW + timedelta(hours=1)),
    )


def test_no_grace_drops_the_old_secret() -> None:
    hook = webhook(secrets=(SigningSecret("whsec_old"),))
    assert rotated_secrets(hook, "whsec_new", 0, NOW) == (SigningSecret("whsec_new"),)


def test_an_earlier_shorter_expiry_is_kept() -> None:
    soon = NOW + timedelta(minutes=5)
    hook = webhook(secrets=(SigningSecret("whsec_b"), SigningSecret("whsec_a", soon)))
    assert rotated_secrets(hook, "whsec_c", 3600, NOW) == (
        SigningSecret("whsec_c"),
        SigningSecret("whsec_b", NOW + timedelta(hours=1)),
        SigningSecret("whsec_a", soon),
    )


def test_a_longer_earlier_expiry_is_cut_to_the_new_grace() -> None:
    later = NOW + timedelta(days=1)
    hook = webhook(secrets=(SigningSecret("whsec_b"), SigningSecret("whsec_a", later)))
    grace_end = NOW + timedelta(seconds=60)
    assert rotated_secrets(hook, "whsec_c", 60, NOW) == (
        SigningSecret("whsec_c"),
        SigningSecret("whsec_b", grace_end),
        SigningSecret("whsec_a", grace_end),
    )


def test_expired_secrets_are_dropped() -> None:
    hook = webhook(
        secrets=(SigningSecret("whsec_b"), SigningSecret("whsec_a", NOW - timedelta(seconds=1)))
    )
    assert rotated_secrets(hook, "whsec_c", 60, NOW) == (
        SigningSecret("whsec_c"),
        SigningSecret("whsec_b", NOW + timedelta(seconds=60)),
    )
    at_now = webhook(secrets=(SigningSecret("whsec_a", NOW),))
    assert rotated_secrets(at_now, "whsec_c", 60, NOW) == (SigningSecret("whsec_c"),)


def test_rotating_to_a_secret_already_held_keeps_it_once() -> None:
    hook = webhook(secrets=(SigningSecret("whsec_b"), SigningSecret("whsec_a", NOW + timedelta(1))))
    assert rotated_secrets(hook, "whsec_a", 60, NOW) == (
        SigningSecret("whsec_a"),
        SigningSecret("whsec_b", NOW + timedelta(seconds=60)),
    )
