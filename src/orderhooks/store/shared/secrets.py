"""Secrets at rest: the start-up check that every stored secret opens, and resealing
every one with the first key (`orderhooks secrets reencrypt`); docs/security.md.

The stored values are a webhook's signing secrets (`secrets`), its header values
(`headers`) and its client key (`tls`), deleted webhooks included: their rows keep them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from orderhooks.exceptions import SecretUnreadable
from orderhooks.secretbox import (
    ENV_VAR,
    SecretBox,
    webhook_client_key_context,
    webhook_header_context,
    webhook_secret_context,
)
from orderhooks.store.shared.core import StoreCore
from orderhooks.store.shared.tx import Row, Tx
from orderhooks.store.shared.values import dumps, loads

RESEAL_BATCH = 100  # webhooks per transaction of `reseal_secrets`
_KEY_ID = slice(7, 15)  # of `enc:v1:<key id>:…`


@dataclass(frozen=True, slots=True)
class SecretsReport:
    """How the stored secrets are protected: counts of values."""

    values: int  # every stored secret, header value and client key
    plaintext: int  # stored unencrypted
    stale: int  # sealed, but not with the first key
    key_ids: tuple[str, ...]  # the configured keys, the sealing one first
    webhooks_to_reseal: int = 0  # webhooks holding a plaintext or stale value


@dataclass(frozen=True, slots=True)
class ResealReport:
    """What `reseal_secrets` rewrote."""

    webhooks: int
    values: int
    key_id: str


@dataclass
class _Unreadable:
    count: int = 0
    keys: Counter[str] = field(default_factory=Counter)
    first: str = ""


def _stored_values(row: Row) -> Iterator[tuple[str, str]]:
    """(stored value, context) of every secret in a `webhooks` row."""
    wid = row["id"]
    for entry in loads(row["secrets"]):
        yield entry["secret"], webhook_secret_context(wid)
    for name, value in loads(row["headers"]).items():
        yield value, webhook_header_context(wid, name)
    if row["tls"] is not None:
        yield loads(row["tls"])["clientKey"], webhook_client_key_context(wid)


def _resealed(row: Row, reseal: Callable[[str, str], str]) -> dict[str, object]:
    """The `reseal_webhook` parameters of a row, each value passed through `reseal`."""
    wid = row["id"]
    secrets = [
        {**entry, "secret": reseal(entry["secret"], webhook_secret_context(wid))}
        for entry in loads(row["secrets"])
    ]
    headers = {
        name: reseal(value, webhook_header_context(wid, name))
        for name, value in loads(row["headers"]).items()
    }
    tls = None
    if row["tls"] is not None:
        value = loads(row["tls"])
        value["clientKey"] = reseal(value["clientKey"], webhook_client_key_context(wid))
        tls = dumps(value)
    return {"id": wid, "secrets": dumps(secrets), "headers": dumps(headers), "tls": tls}


def check_rows(rows: list[Row], box: SecretBox) -> SecretsReport:
    """Open every secret of `rows`; SecretUnreadable (naming the variable, the keys
    missing and how many values need them, never a value) when one does not open."""
    values = plaintext = stale = webhooks_to_reseal = 0
    unreadable = _Unreadable()
    for row in rows:
        before = plaintext + stale
        for stored, context in _stored_values(row):
            values += 1
            try:
                box.open(stored, context)
            except SecretUnreadable as exc:
                unreadable.count += 1
                unreadable.keys[stored[_KEY_ID] if stored.startswith("enc:v1:") else "?"] += 1
                unreadable.first = unreadable.first or str(exc)
                continue
            if not box.is_sealed(stored):
                plaintext += 1
            elif box.needs_reseal(stored):
                stale += 1
        if plaintext + stale > before:
            webhooks_to_reseal += 1
    if unreadable.count:
        needed = ", ".join(f"{k} ({n} values)" for k, n in sorted(unreadable.keys.items()))
        raise SecretUnreadable(
            f"{unreadable.count} stored secrets cannot be decrypted with {ENV_VAR} "
            f"(configured key ids: {', '.join(box.key_ids) or 'none'}; needed: {needed}). "
            f"Add the missing key to {ENV_VAR}; first problem: {unreadable.first}"
        )
    return SecretsReport(values, plaintext, stale, box.key_ids, webhooks_to_reseal)


class SecretOperations(StoreCore):
    """Checking and resealing the secrets stored with the webhooks."""

    async def check_secrets(self) -> SecretsReport:
        """Open every stored secret once (at start); SecretUnreadable when one does not."""

        async def job(tx: Tx) -> SecretsReport:
            return check_rows(await tx.fetch("all_webhook_secrets"), self.box)

        return await self._read(job)

    async def reseal_secrets(self) -> ResealReport:
        """Seal every stored secret not sealed with the first key with it (deleted
        webhooks included), a batch of webhooks per transaction, each batch locked
        against concurrent changes; idempotent. Needs keys."""
        if not self.box.encrypts:
            raise SecretUnreadable(f"{ENV_VAR} is not set: there is no key to encrypt with")
        webhooks = values = 0
        after = ""
        while True:

            async def batch(tx: Tx, after: str = after) -> tuple[str | None, int, int]:
                rows = await tx.fetch("webhook_secrets_batch", after=after, limit=RESEAL_BATCH)
                changed_rows = changed_values = 0
                for row in rows:
                    stale = [s for s, _ in _stored_values(row) if self.box.needs_reseal(s)]
                    if stale:
                        params = _resealed(row, self._reseal_if_needed)
                        await tx.execute("reseal_webhook", **params)
                        changed_rows += 1
                        changed_values += len(stale)
                last = rows[-1]["id"] if len(rows) == RESEAL_BATCH else None
                return last, changed_rows, changed_values

            last, rows_done, values_done = await self._write(batch)
            webhooks += rows_done
            values += values_done
            if last is None:
                break
            after = last
        return ResealReport(webhooks, values, self.box.key_ids[0])

    def _reseal_if_needed(self, stored: str, context: str) -> str:
        return self.box.reseal(stored, context) if self.box.needs_reseal(stored) else stored


__all__ = ["ResealReport", "SecretOperations", "SecretsReport", "check_rows"]
