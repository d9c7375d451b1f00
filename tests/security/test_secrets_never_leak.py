"""Keys and webhook secrets never leak (issue 5, item 2; docs/api.md, authentication): not into the
log, not into the database (keys), not into lists, audit entries or error answers (secrets).

The scenario (`leak_scenario.run_scenario`) runs once per module against a real server;
each test searches what it recorded. Every credential is searched in several spellings:
as issued, without its prefix, and for secrets also the key bytes in base64, URL-safe
base64 and hex, so that a re-encoded copy is found as well.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import orjson
import pytest

from orderhooks.domain.apikeys import hash_api_key
from tests.security.leak_scenario import RECEIVER_TOKEN, Observed, Run, run_scenario
from tests.security.support import SECRET_PREFIX, secret_forms

KEY_PREFIX = "ohk_"


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    """The scenario's observations (the server has been stopped)."""
    return run_scenario(tmp_path_factory.mktemp("secrets"))


def key_forms(key: str) -> list[str]:
    """The spellings of an API key to search for."""
    return [key, key.removeprefix(KEY_PREFIX)]


def logs(run: Run | None) -> str:
    """Standard output and standard error of a run."""
    assert run is not None
    return run.stdout() + run.stderr()


def found_in(text: str, forms: list[str]) -> list[str]:
    """The forms that occur in `text`."""
    return [form for form in forms if form in text]


def other_keys(seen: Observed) -> Iterator[tuple[str, str]]:
    """Every key created through the API, by name."""
    yield from seen.keys.items()


def test_generated_admin_key_is_printed_once_on_its_own_line(seen: Observed) -> None:
    """Without ORDERHOOKS_ADMIN_KEY the first start prints one key, alone on a line."""
    assert seen.first is not None and seen.admin_key.startswith(KEY_PREFIX)
    stdout = seen.first.stdout()
    assert stdout.count(seen.admin_key) == 1, stdout[-2000:]
    assert stdout.splitlines().count(seen.admin_key) == 1, "the key must be a line of its own"


def test_generated_admin_key_file_is_private(seen: Observed) -> None:
    """`<data dir>/admin.key` holds the key and a newline, readable by its owner only."""
    path = seen.data_dir / "admin.key"
    assert path.read_text() == seen.admin_key + "\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_generated_admin_key_never_reaches_the_log(seen: Observed) -> None:
    """The log (stderr) never carries the generated key; a second start prints nothing."""
    assert seen.first is not None and seen.second is not None
    forms = key_forms(seen.admin_key)
    assert found_in(seen.first.stderr(), forms) == []
    assert found_in(logs(seen.second), forms) == [], "the key was printed again on restart"


def test_created_keys_never_appear_in_any_output(seen: Observed) -> None:
    """Keys created through the API appear in no output of either run."""
    output = logs(seen.first) + logs(seen.second)
    leaks = {name: found_in(output, key_forms(key)) for name, key in other_keys(seen)}
    assert all(not forms for forms in leaks.values()), leaks


def test_keys_are_stored_only_as_hashes(seen: Observed) -> None:
    """The database file and its WAL hold each key's SHA-256, never the key itself."""
    keys = {"generated admin": seen.admin_key, **seen.keys}
    for moment, raw in (("running", seen.db_while_running), ("stopped", seen.db_after_stop)):
        text = raw.decode("latin-1")
        leaks = {name: found_in(text, key_forms(key)) for name, key in keys.items()}
        assert all(not forms for forms in leaks.values()), (moment, leaks)
    everything = (seen.db_while_running + seen.db_after_stop).decode("latin-1")
    missing = [name for name, key in keys.items() if hash_api_key(key) not in everything]
    assert missing == [], f"the search looked in the wrong file: no hash of {missing}"


def test_secrets_and_header_credentials_never_appear_in_the_log(seen: Observed) -> None:
    """No webhook secret, in any spelling, and no static header value is ever logged."""
    output = logs(seen.first) + logs(seen.second)
    leaks = {name: found_in(output, secret_forms(s)) for name, s in seen.secrets.items()}
    assert all(not forms for forms in leaks.values()), leaks
    assert RECEIVER_TOKEN not in output


def test_secrets_and_keys_are_absent_from_lists_reads_and_audit(seen: Observed) -> None:
    """Lists, single reads, deliveries, audit entries, metrics: no secret and no key."""
    assert '"data"' in seen.listings["audit"], seen.listings["audit"][:500]
    for what, text in seen.listings.items():
        for name, secret in seen.secrets.items():
            assert found_in(text, secret_forms(secret)) == [], f"{what} carries secret {name}"
        for name, key in {"admin": seen.admin_key, **seen.keys}.items():
            assert found_in(text, key_forms(key)) == [], f"{what} carries key {name}"
    assert RECEIVER_TOKEN not in seen.listings["audit"], "the audit trail shows header values"
    webhook = orjson.loads(seen.listings["webhook"])
    assert "secret" not in webhook and "secrets" not in webhook


def test_error_answers_carry_no_secret_and_no_key(seen: Observed) -> None:
    """Refusals of bad keys and of bodies that carry keys and secrets echo none of them."""
    assert len(seen.errors) >= 10, seen.errors
    credentials = [*key_forms(seen.admin_key)]
    for key in seen.keys.values():
        credentials += key_forms(key)
    for secret in seen.secrets.values():
        credentials += secret_forms(secret)
    for what, status, body in seen.errors:
        assert 400 <= status < 500, (what, status, body[:300])
        assert found_in(body, credentials) == [], f"the answer to '{what}' echoes a credential"


def test_secrets_appear_only_in_create_rotate_and_secret_answers(seen: Observed) -> None:
    """Each secret was handed out by create, rotate or GET …/secret, exactly as issued."""
    handed_out = [answer["secret"] for _, answer in seen.secret_answers]
    assert all(s.startswith(SECRET_PREFIX) for s in handed_out), handed_out
    assert set(seen.secrets.values()) <= set(handed_out)
    kinds = {kind for kind, _ in seen.secret_answers}
    assert kinds == {"create", "get", "rotate"}
    assert seen.secrets["chosen"] in handed_out, "a chosen secret is answered back as given"


def test_deliveries_are_signed_with_the_current_secret(seen: Observed) -> None:
    """The receiver verifies every delivery with the newest secret (the chosen one)."""
    from orderhooks.testing import signature_problem

    assert len(seen.deliveries) >= 3
    problems = [signature_problem(r, seen.secrets["chosen"]) for r in seen.deliveries]
    assert problems == [None] * len(problems), problems
    for request in seen.deliveries:
        assert request.headers.get("x-receiver-token") == RECEIVER_TOKEN
        assert found_in(request.body.decode(), secret_forms(seen.secrets["chosen"])) == []
