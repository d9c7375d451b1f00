"""Secrets at rest (docs/security.md, "Secrets at rest"): with ORDERHOOKS_ENCRYPTION_KEYS
set, no webhook secret, header value or client key is in the database in any spelling.

A real server on each engine stores two signing secrets (after a rotation), two header
values (one replaced by a PATCH) and a client key, and delivers with them to an HTTPS
receiver that requires the client certificate (so every value was really used). Then:
on SQLite the database file, its WAL (read while the server runs and after a crash) and
a copy made by `orderhooks backup` are searched byte for byte; on PostgreSQL every text
column of every table. Each value is searched as given, in base64 and in hex, secrets
also without `whsec_` and re-encoded, the key as PEM lines and DER. A second scenario
turns encryption on for a database written without it: after `orderhooks secrets
reencrypt` nothing of the plaintexts is left either.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from orderhooks.testing.certificates import Issued
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.server import ServerProcess
from tests.integration.cli_support import cli_env, run_cli
from tests.security.support import secret_forms
from tests.support.data import ALL_TYPES, new_order, unique
from tests.support.tls import Pki, make_pki, mtls_receiver, new_encryption_key, tls_field

DELIVERY_TIMEOUT = 30.0


# ---------------------------------------------------------------- spellings


def text_forms(value: str) -> list[str]:
    """A header value as given, in base64 (with and without padding) and in hex."""
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    return [value, b64, b64.rstrip("="), raw.hex()]


def key_forms(holder: Issued) -> list[str]:
    """A private key as PEM, each full line of its PEM body, and its DER (PKCS#8 and the
    key's traditional form) in base64 and hex."""
    pem = holder.key_pem
    lines = [line for line in pem.splitlines() if len(line) == 64]
    forms = [pem, *lines]
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        der = holder.key.private_bytes(
            serialization.Encoding.DER, fmt, serialization.NoEncryption()
        )
        forms += [base64.b64encode(der).decode(), der.hex()]
    return forms


def leaks(blob: str, secrets: dict[str, list[str]]) -> list[str]:
    """`what: form` for every form of every secret found in `blob`."""
    return [
        f"{what}: {form[:24]}…" for what, forms in secrets.items() for form in forms if form in blob
    ]


def as_text(data: bytes) -> str:
    """File bytes as text, each byte one character, so that ASCII spellings are found."""
    return data.decode("latin-1")


# ---------------------------------------------------------------- the scenario


class Stored:
    """The secrets a scenario stored, by what they are."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[str]] = {}
        self.signing_secret = ""
        self.webhook_id = ""
        self.url = ""


def store_and_deliver(api: httpx.Client, rx: Receiver, pki: Pki) -> Stored:
    """A webhook with secrets, headers and a client key, changed and rotated, and two
    deliveries signed and sent with them; what it stored."""
    stored = Stored()
    account = unique("acct")
    first_header, second_header, token = unique("hv1"), unique("hv2"), unique("bearer")
    body = {
        "url": rx.url,
        "accounts": [account],
        "eventTypes": ALL_TYPES,
        "headers": {"X-Api-Key": first_header, "Authorization": f"Bearer {token}"},
        "tls": tls_field(pki.client, pki.ca),
    }
    created = api.post("/v1/webhooks", json=body)
    assert created.status_code == 201, created.text
    webhook = created.json()
    stored.webhook_id, stored.url = webhook["id"], rx.url
    assert webhook["tls"]["clientKey"] == "<set>"
    changed = api.patch(
        f"/v1/webhooks/{webhook['id']}",
        json={"headers": {"X-Api-Key": second_header, "Authorization": f"Bearer {token}"}},
    )
    assert changed.status_code == 200, changed.text
    rotated = api.post(f"/v1/webhooks/{webhook['id']}/secret/rotate", json={})
    assert rotated.status_code == 200, rotated.text
    stored.signing_secret = rotated.json()["secret"]
    stored.secrets = {
        "first signing secret": secret_forms(webhook["secret"]),
        "second signing secret": secret_forms(stored.signing_secret),
        "replaced header value": text_forms(first_header),
        "header value": text_forms(second_header),
        "bearer token": text_forms(token),
        "client key": key_forms(pki.client),
    }
    order = api.post("/v1/orders", json=new_order(account))
    assert order.status_code == 202, order.text
    rx.wait_for_sync(lambda: len(rx.accepted()) >= 1, DELIVERY_TIMEOUT, "the delivery")
    assert rx.verify_all(stored.signing_secret) >= 1
    delivered = rx.accepted()[0]
    assert delivered.client_name == "partner-42"
    assert delivered.headers["x-api-key"] == second_header
    return stored


async def every_text_value(url: str) -> str:
    """Every value of every text or JSON column of every table, joined."""
    connection = await asyncpg.connect(url)
    try:
        columns = await connection.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea')"
        )
        assert any(c["table_name"] == "webhooks" for c in columns)
        parts: list[str] = []
        for column in columns:
            table, name = column["table_name"], column["column_name"]
            assert re.fullmatch(r"\w+", table) and re.fullmatch(r"\w+", name)
            rows = await connection.fetch(f'SELECT "{name}"::text AS v FROM "{table}"')  # noqa: S608
            parts += [row["v"] for row in rows if row["v"] is not None]
        return "\n".join(parts)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def test_no_secret_is_stored_in_any_spelling(
    tmp_path: Path, pki: Pki, database_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    env = {"ORDERHOOKS_ENCRYPTION_KEYS": new_encryption_key(), **database_env}
    server = ServerProcess(data_dir, env=env)
    with mtls_receiver(pki) as rx, server, server.client() as api:
        stored = store_and_deliver(api, rx, pki)
        if database_env:
            blobs = {
                "postgresql": asyncio.run(every_text_value(database_env["ORDERHOOKS_DATABASE_URL"]))
            }
        else:
            blobs = sqlite_blobs(tmp_path, data_dir, server)
    everything = "".join(blobs.values())
    assert stored.url in everything, "the webhook is not where it was looked for"
    assert "enc:v1:" in everything, "no sealed value where the secrets were looked for"
    for where, blob in blobs.items():
        assert leaks(blob, stored.secrets) == [], where


def sqlite_blobs(tmp_path: Path, data_dir: Path, server: ServerProcess) -> dict[str, str]:
    """The database file and its WAL while the server runs, a backup made then, and file
    and WAL after a crash (SIGKILL: the WAL is left as it was)."""
    db = data_dir / "orderhooks.db"
    wal = Path(f"{db}-wal")
    blobs = {"database": as_text(db.read_bytes()), "wal (running)": as_text(wal.read_bytes())}
    assert "enc:v1:" in blobs["wal (running)"], "the WAL should hold the recent writes"
    backup = tmp_path / "backup.db"
    result = run_cli(["backup", str(backup)], cli_env(data_dir))
    assert result.returncode == 0, result.stderr
    blobs["backup"] = as_text(backup.read_bytes())
    assert "enc:v1:" in blobs["backup"]
    server.kill()
    blobs["database (after a crash)"] = as_text(db.read_bytes())
    blobs["wal (after a crash)"] = as_text(wal.read_bytes()) if wal.exists() else ""
    return blobs


def test_turning_encryption_on_leaves_no_plaintext_behind(tmp_path: Path, pki: Pki) -> None:
    """Secrets stored without keys are in the file; after setting a key and `secrets
    reencrypt` (VACUUM, WAL emptied) none is left, and delivery goes on with them."""
    data_dir = tmp_path / "data"
    with mtls_receiver(pki) as rx:
        with ServerProcess(data_dir) as server, server.client() as api:
            stored = store_and_deliver(api, rx, pki)
            server.terminate()
        db = data_dir / "orderhooks.db"
        before = as_text(db.read_bytes())
        assert leaks(before, stored.secrets), "without keys the secrets are stored as given"
        assert "enc:v1:" not in before

        key = new_encryption_key()
        dry = run_cli(
            ["secrets", "reencrypt", "--dry-run"],
            cli_env(data_dir, ORDERHOOKS_ENCRYPTION_KEYS=key),
        )
        assert dry.returncode == 0, dry.stderr
        counted = re.search(r"would reseal ([1-9]\d*) values in 1 webhooks", dry.stdout)
        assert counted and "nothing written" in dry.stdout, dry.stdout
        assert leaks(as_text(db.read_bytes()), stored.secrets), "a dry run writes nothing"
        assert "enc:v1:" not in as_text(db.read_bytes())

        result = run_cli(
            ["secrets", "reencrypt"], cli_env(data_dir, ORDERHOOKS_ENCRYPTION_KEYS=key)
        )
        assert result.returncode == 0, result.stderr
        assert f"resealed {counted.group(1)} values in 1 webhooks" in result.stdout, result.stdout
        again = run_cli(["secrets", "reencrypt"], cli_env(data_dir, ORDERHOOKS_ENCRYPTION_KEYS=key))
        assert again.returncode == 0 and "resealed 0 values in 0 webhooks" in again.stdout

        files = [db, Path(f"{db}-wal")]
        for path in files:
            if path.exists():
                blob = as_text(path.read_bytes())
                assert leaks(blob, stored.secrets) == [], path.name

        rx_before = len(rx.accepted())
        env = {"ORDERHOOKS_ENCRYPTION_KEYS": key}
        with ServerProcess(data_dir, env=env) as server, server.client() as api:
            webhook = api.get(f"/v1/webhooks/{stored.webhook_id}").json()
            order = api.post("/v1/orders", json=new_order(webhook["accounts"][0]))
            assert order.status_code == 202, order.text
            rx.wait_for_sync(lambda: len(rx.accepted()) > rx_before, DELIVERY_TIMEOUT, "delivery")
        assert rx.verify_all(stored.signing_secret) > rx_before


def test_reencrypt_never_reports_success_while_a_reader_keeps_the_plaintext(
    tmp_path: Path, pki: Pki
) -> None:
    """`secrets reencrypt` while the server serves and another connection holds a read
    snapshot (a long dashboard query, a backup, an operator's sqlite3 shell): the
    checkpoint cannot copy the resealed pages into the file, which keeps the plaintext.
    The command must not report success then; run again without the reader, it does."""
    data_dir = tmp_path / "data"
    db = data_dir / "orderhooks.db"
    key = new_encryption_key()
    env = {"ORDERHOOKS_ENCRYPTION_KEYS": key}
    with mtls_receiver(pki) as rx:
        with ServerProcess(data_dir) as server, server.client() as api:
            stored = store_and_deliver(api, rx, pki)
            server.terminate()
        with ServerProcess(data_dir, env=env) as server:
            reader = sqlite3.connect(db)
            try:
                reader.execute("BEGIN")
                assert reader.execute("SELECT count(*) FROM webhooks").fetchone()[0] == 1
                held = run_cli(["secrets", "reencrypt"], cli_env(data_dir, **env))
            finally:
                reader.rollback()
                reader.close()
            left = leaks(as_text(db.read_bytes()), stored.secrets)
            assert held.returncode != 0 or left == [], (
                f"reencrypt reported success ({held.stdout.strip()}) while the database "
                f"file still holds {left}"
            )
            if held.returncode != 0:
                assert "run it again" in held.stderr, held.stderr
            again = run_cli(["secrets", "reencrypt"], cli_env(data_dir, **env))
            assert again.returncode == 0, again.stderr
            for path in (db, Path(f"{db}-wal")):
                if path.exists():
                    assert leaks(as_text(path.read_bytes()), stored.secrets) == [], path.name


def test_a_dry_run_counts_what_reencrypt_reseals_and_writes_nothing(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    """docs/cli.md, `secrets reencrypt --dry-run`, on both engines: the counts of the run
    that follows, and nothing resealed by the dry run itself."""
    data_dir = tmp_path / "data"
    with ServerProcess(data_dir, env=dict(database_env)) as server, server.client() as api:
        body = {
            "url": "https://receiver.example/hook",
            "accounts": [unique("acct")],
            "eventTypes": ALL_TYPES,
            "headers": {"X-Api-Key": unique("hv")},
        }
        assert api.post("/v1/webhooks", json=body).status_code == 201
    env = cli_env(data_dir, ORDERHOOKS_ENCRYPTION_KEYS=new_encryption_key(), **database_env)
    dry = run_cli(["secrets", "reencrypt", "--dry-run", "--json"], env)
    assert dry.returncode == 0, dry.stderr
    counted = orjson.loads(dry.stdout)
    assert counted["dryRun"] is True and counted["webhooks"] == 1, counted
    assert counted["values"] == 2, "the signing secret and the header value"
    again = run_cli(["secrets", "reencrypt", "--dry-run", "--json"], env)
    assert orjson.loads(again.stdout) == counted, "the dry run resealed nothing"
    done = run_cli(["secrets", "reencrypt", "--json"], env)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == {k: v for k, v in counted.items() if k != "dryRun"}
