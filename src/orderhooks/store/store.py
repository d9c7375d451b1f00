"""`Store`: everything orderhooks keeps, one class over either engine.

Each operation is written once, over the engine's transaction seam (`shared.tx.Tx`), in
the module of its concern; `Store` puts them together. An engine (`sqlite.SQLiteEngine`,
`postgres.PostgresEngine`) only provides connections, transactions and its SQL, so the
engines cannot drift apart. One contract test suite runs against both. The decisions
inside the transactions (which events an ingest creates, who gets them, what a failed
attempt means for a webhook) are pure domain functions the operations call. No value is
ever formatted into SQL. All methods are coroutines and safe to call concurrently.
"""

from __future__ import annotations

from orderhooks.store.shared.admin import AdminOperations
from orderhooks.store.shared.claim import ClaimOperations
from orderhooks.store.shared.erasure import ErasureOperations
from orderhooks.store.shared.ingest import IngestOperations
from orderhooks.store.shared.manual import ManualOperations
from orderhooks.store.shared.portal import PortalOperations
from orderhooks.store.shared.reads import ReadOperations
from orderhooks.store.shared.record import RecordOperations
from orderhooks.store.shared.secrets import SecretOperations
from orderhooks.store.shared.webhooks import WebhookOperations


class Store(
    IngestOperations,
    ReadOperations,
    WebhookOperations,
    ManualOperations,
    ClaimOperations,
    RecordOperations,
    AdminOperations,
    PortalOperations,
    ErasureOperations,
    SecretOperations,
):
    """Everything orderhooks keeps: `Store(engine, require_agreement=…,
    disable_after_seconds=…)`, then `open()` (and `migrate()` where the caller owns the
    schema). `orderhooks.store.open_store(settings)` picks the engine from the settings.

    Lifecycle (`open`, `close`, `migrate`, `ping`, `wait_for_work`): `shared.core`.
    Ingest: `shared.ingest`. Orders, events, webhooks, deliveries, statistics, usage as
    read: `shared.reads`. Webhooks and agreements: `shared.webhooks`. Retry, recover,
    replay, test: `shared.manual`. The queue: `shared.claim`, `shared.record`. Keys,
    audit, retention: `shared.admin`. Portal links: `shared.portal`. Erasing an order's
    personal data: `shared.erasure`. Secrets at rest: `shared.secrets`.
    """
