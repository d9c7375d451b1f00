-- Named queries of the SQLite engine. Each block starts with `-- name: <name>`; the
-- PostgreSQL file has the same names with the same parameters ($n there, ?n here).
-- Lists are passed as JSON text and read with json_each. Booleans are 0/1.

-- ============================================================ lifecycle

-- name: ping
SELECT 1;

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
);

-- name: applied_migrations
SELECT name FROM schema_migrations ORDER BY name;

-- name: insert_migration
INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2);

-- name: relaxed_commit
-- The writer thread relaxes the fsync per group commit instead (sqlite_io.Writer).
SELECT 1;

-- ============================================================ webhook catalog

-- name: webhooks_version
SELECT value FROM meta WHERE name = 'webhooks_version';

-- name: bump_webhooks_version
UPDATE meta SET value = value + 1 WHERE name = 'webhooks_version';

-- name: live_webhooks
SELECT * FROM webhooks WHERE deleted_at IS NULL ORDER BY id;

-- name: agreed_accounts
SELECT account FROM agreements WHERE account IN (SELECT value FROM json_each(?1));

-- ============================================================ ingest

-- name: lock_orders
-- The single writer already serialises every transaction: a plain read.
SELECT order_id FROM orders WHERE order_id IN (SELECT value FROM json_each(?1));

-- name: orders_for_ingest
SELECT * FROM orders WHERE order_id IN (SELECT value FROM json_each(?1)) ORDER BY order_id;

-- name: busy_queues
SELECT DISTINCT webhook_id, order_id FROM deliveries
WHERE order_id IN (SELECT value FROM json_each(?1))
  AND state IN ('pending', 'delivering') AND test = 0;

-- name: insert_order
INSERT INTO orders (order_id, account, location, channel_link, channel, status, document,
                    body_hash, courier, next_sequence, max_flow_status, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13);

-- name: update_order
UPDATE orders SET account = ?2, location = ?3, channel_link = ?4, channel = ?5, status = ?6,
    document = ?7, body_hash = ?8, courier = ?9, next_sequence = ?10, max_flow_status = ?11,
    created_at = ?12, updated_at = ?13
WHERE order_id = ?1;

-- name: insert_event
INSERT INTO events (id, type, order_id, account, location, channel_link, channel, sequence,
                    created_at, data, status, test)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12);

-- name: insert_delivery
INSERT INTO deliveries (id, webhook_id, event_id, event_type, order_id, account, sequence,
                        state, replay, test, ready, created_at, next_attempt_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?10, ?11, ?12);

-- name: refresh_heads
-- The head of one (webhook, order) queue is its lowest pending or delivering sequence.
-- Delivering rows are set too (harmless, and right again if their lease expires); the
-- IN keeps both sides on deliveries_queue, a few rows, never the webhook's backlog.
UPDATE deliveries SET ready = (sequence = (
    SELECT MIN(q.sequence) FROM deliveries AS q
    WHERE q.webhook_id = ?1 AND q.order_id = ?2
      AND q.state IN ('pending', 'delivering') AND q.test = 0))
WHERE webhook_id = ?1 AND order_id = ?2 AND state IN ('pending', 'delivering') AND test = 0;

-- ============================================================ claim

-- name: serialize_claims
-- The single writer already serialises claims.
SELECT 1;

-- name: expire_leases
UPDATE deliveries SET state = 'pending', lease_expires_at = NULL, leased_by = NULL
WHERE state = 'delivering' AND lease_expires_at <= ?1;

-- name: in_flight
-- One index seek per live webhook, never a scan of the backlog.
SELECT webhook_id, COUNT(*) AS n FROM deliveries
WHERE state = 'delivering' AND webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NULL)
GROUP BY webhook_id;

-- name: runtime_of
SELECT * FROM webhook_runtime WHERE webhook_id IN (SELECT value FROM json_each(?1));

-- name: due_heads
SELECT * FROM deliveries
WHERE webhook_id = ?1 AND ready = 1 AND state = 'pending' AND next_attempt_at <= ?2
ORDER BY next_attempt_at
LIMIT ?3;

-- name: mark_delivering
UPDATE deliveries SET state = 'delivering', lease_expires_at = ?2, leased_by = ?3
WHERE id IN (SELECT value FROM json_each(?1)) AND state = 'pending'
RETURNING id;

-- name: spend_tokens
UPDATE webhook_runtime SET rate_tokens = ?2, rate_refilled_at = ?3 WHERE webhook_id = ?1;

-- name: events_by_ids
SELECT * FROM events WHERE id IN (SELECT value FROM json_each(?1));

-- name: next_due_at
-- Per webhook one seek in deliveries_due; a probing webhook is due at its probe time.
SELECT MIN(due) FROM (
    SELECT MAX(
        (SELECT MIN(d.next_attempt_at) FROM deliveries AS d
         WHERE d.webhook_id = w.id AND d.ready = 1 AND d.state = 'pending'),
        CASE WHEN r.probing = 1 THEN COALESCE(r.probe_at, 0) ELSE 0 END) AS due
    FROM webhooks AS w JOIN webhook_runtime AS r ON r.webhook_id = w.id
    WHERE w.state = 'active' AND w.deleted_at IS NULL
      -- A webhook without a free slot is not due: a finished attempt wakes the workers.
      AND (SELECT COUNT(*) FROM deliveries AS f
           WHERE f.webhook_id = w.id AND f.state = 'delivering') < w.max_concurrency
);

-- ============================================================ record

-- name: lock_orders_of_deliveries
-- Nothing to lock: the single writer serialises every transaction.
SELECT ?1 WHERE 0;

-- name: deliveries_for_record
SELECT * FROM deliveries WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id;

-- name: insert_attempt
-- A lease that expired while its attempt was still running gives the same attempt
-- number twice; the first one recorded stays.
INSERT INTO attempts (delivery_id, attempt, webhook_id, started_at, duration_ms, status_code,
                      response_body, error)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (delivery_id, attempt) DO NOTHING;

-- name: advance_delivery
UPDATE deliveries SET state = ?2, next_attempt_at = ?3, delivered_at = ?4, attempt_count = ?5,
    schedule_position = ?6, lease_expires_at = NULL, leased_by = NULL
WHERE id = ?1;

-- name: add_usage
INSERT INTO usage (account, month, event_type, delivered, replayed)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (account, month, event_type) DO UPDATE
SET delivered = usage.delivered + excluded.delivered,
    replayed = usage.replayed + excluded.replayed;

-- name: lock_runtime
SELECT * FROM webhook_runtime WHERE webhook_id IN (SELECT value FROM json_each(?1))
ORDER BY webhook_id;

-- name: update_health
UPDATE webhook_runtime SET consecutive_failures = ?2, failing_since = ?3,
    last_success_at = ?4, last_failure_at = ?5, probing = ?6, probe_at = ?7
WHERE webhook_id = ?1;

-- name: disable_webhook
UPDATE webhooks SET state = 'disabled', disabled_reason = ?2, disabled_at = ?3,
    updated_at = ?3
WHERE id = ?1 AND state <> 'disabled' AND deleted_at IS NULL;

-- ============================================================ webhooks and agreements

-- name: webhook_by_id
SELECT * FROM webhooks WHERE id = ?1 AND deleted_at IS NULL;

-- name: insert_webhook
INSERT INTO webhooks (id, url, description, accounts, event_types, secrets, locations,
                      channel_links, channels, new_order_trigger, status_filter,
                      courier_status_filter, payload_format, headers, timeout_seconds,
                      retry_schedule, max_concurrency, rate_limit_per_second, ordering, state,
                      disabled_reason, disabled_at, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
        ?20, ?21, ?22, ?23, ?24);

-- name: update_webhook
UPDATE webhooks SET url = ?2, description = ?3, accounts = ?4, event_types = ?5, secrets = ?6,
    locations = ?7, channel_links = ?8, channels = ?9, new_order_trigger = ?10,
    status_filter = ?11, courier_status_filter = ?12, payload_format = ?13, headers = ?14,
    timeout_seconds = ?15, retry_schedule = ?16, max_concurrency = ?17,
    rate_limit_per_second = ?18, ordering = ?19, state = ?20, disabled_reason = ?21,
    disabled_at = ?22, created_at = ?23, updated_at = ?24
WHERE id = ?1;

-- name: insert_runtime
INSERT INTO webhook_runtime (webhook_id) VALUES (?1);

-- name: delete_webhook_accounts
DELETE FROM webhook_accounts WHERE webhook_id = ?1;

-- name: insert_webhook_account
INSERT INTO webhook_accounts (webhook_id, account) VALUES (?1, ?2);

-- name: ready_all
UPDATE deliveries SET ready = 1 WHERE webhook_id = ?1 AND state = 'pending' AND ready = 0;

-- name: queues_of_webhook
SELECT DISTINCT order_id FROM deliveries
WHERE webhook_id = ?1 AND state IN ('pending', 'delivering') AND test = 0;

-- name: mark_webhook_deleted
UPDATE webhooks SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1;

-- name: cancel_deliveries
UPDATE deliveries SET state = 'cancelled', ready = 0, lease_expires_at = NULL, leased_by = NULL
WHERE webhook_id = ?1 AND state IN ('pending', 'delivering');

-- name: reset_health
UPDATE webhook_runtime SET consecutive_failures = 0, failing_since = NULL, probing = 0,
    probe_at = NULL
WHERE webhook_id = ?1;

-- name: set_webhook_state
UPDATE webhooks SET state = ?2, disabled_reason = ?3, disabled_at = ?4, updated_at = ?5
WHERE id = ?1;

-- name: upsert_agreement
INSERT INTO agreements (account, signed_by, signed_at, currency, per_thousand, recorded_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (account) DO UPDATE
SET signed_by = excluded.signed_by, signed_at = excluded.signed_at,
    currency = excluded.currency, per_thousand = excluded.per_thousand,
    recorded_at = excluded.recorded_at;

-- name: awaiting_webhooks_of
SELECT w.* FROM webhooks AS w JOIN webhook_accounts AS a ON a.webhook_id = w.id
WHERE a.account = ?1 AND w.state = 'awaiting_agreement' AND w.deleted_at IS NULL
ORDER BY w.id;

-- name: count_webhooks_of
SELECT COUNT(*) FROM webhook_accounts AS a JOIN webhooks AS w ON w.id = a.webhook_id
WHERE a.account = ?1 AND w.deleted_at IS NULL;

-- name: agreement_of
SELECT * FROM agreements WHERE account = ?1;

-- ============================================================ manual control

-- name: delivery_by_id
SELECT * FROM deliveries WHERE id = ?1;

-- name: make_due
UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1 AND state = 'pending';

-- name: requeue_delivery
UPDATE deliveries SET state = 'pending', next_attempt_at = ?2, delivered_at = NULL,
    schedule_position = 0, ready = 1, lease_expires_at = NULL, leased_by = NULL
WHERE id = ?1 AND state = 'failed';

-- name: lock_orders_of_failed
-- Nothing to lock: the single writer serialises every transaction.
SELECT ?1, ?2, ?3 WHERE 0;

-- name: recover_failed
UPDATE deliveries SET state = 'pending', next_attempt_at = ?4, delivered_at = NULL,
    schedule_position = 0, ready = 1, lease_expires_at = NULL, leased_by = NULL
WHERE webhook_id = ?1 AND state = 'failed' AND created_at >= ?2
  AND (?3 IS NULL OR created_at < ?3)
RETURNING order_id, test;

-- name: replay_candidates
SELECT * FROM events
WHERE (created_at, id) > (?1, ?2) AND (?3 IS NULL OR created_at < ?3) AND test = 0
  AND (?4 IS NULL OR account IN (SELECT value FROM json_each(?4)))
  AND (?5 IS NULL OR type IN (SELECT value FROM json_each(?5)))
ORDER BY created_at, id
LIMIT ?6;

-- ============================================================ reads

-- name: order_by_id
SELECT * FROM orders WHERE order_id = ?1;

-- name: events_of_order
SELECT * FROM events WHERE order_id = ?1 AND test = 0 ORDER BY sequence, id;

-- name: event_by_id
SELECT * FROM events WHERE id = ?1;

-- name: list_events
SELECT * FROM events
WHERE id > ?1 AND test = 0
  AND (?2 IS NULL OR order_id = ?2)
  AND (?3 IS NULL OR type = ?3)
  AND (?4 IS NULL OR account = ?4)
  AND (?5 IS NULL OR created_at >= ?5)
  AND (?6 IS NULL OR created_at < ?6)
  AND (?7 IS NULL OR account IN (SELECT value FROM json_each(?7)))
ORDER BY id
LIMIT ?8;

-- name: list_events_of_order
SELECT * FROM events
WHERE order_id = ?2 AND id > ?1 AND test = 0
  AND (?3 IS NULL OR type = ?3)
  AND (?4 IS NULL OR account = ?4)
  AND (?5 IS NULL OR created_at >= ?5)
  AND (?6 IS NULL OR created_at < ?6)
  AND (?7 IS NULL OR account IN (SELECT value FROM json_each(?7)))
ORDER BY id
LIMIT ?8;

-- name: list_webhooks
SELECT * FROM webhooks AS w
WHERE w.id > ?1 AND w.deleted_at IS NULL
  AND (?2 IS NULL OR EXISTS (
      SELECT 1 FROM webhook_accounts AS a WHERE a.webhook_id = w.id AND a.account = ?2))
  AND (?3 IS NULL OR w.state = ?3)
  AND (?4 IS NULL OR NOT EXISTS (
      SELECT 1 FROM webhook_accounts AS a
      WHERE a.webhook_id = w.id AND a.account NOT IN (SELECT value FROM json_each(?4))))
ORDER BY w.id
LIMIT ?5;

-- name: list_deliveries
SELECT * FROM deliveries
WHERE id < ?1
  AND (?2 IS NULL OR webhook_id = ?2)
  AND (?3 IS NULL OR state = ?3)
  AND (?4 IS NULL OR order_id = ?4)
  AND (?5 IS NULL OR event_type = ?5)
  AND (?6 IS NULL OR created_at >= ?6)
  AND (?7 IS NULL OR created_at < ?7)
  AND (?8 IS NULL OR account IN (SELECT value FROM json_each(?8)))
ORDER BY id DESC
LIMIT ?9;

-- name: list_deliveries_of_webhook
SELECT * FROM deliveries
WHERE webhook_id = ?2 AND id < ?1
  AND (?3 IS NULL OR state = ?3)
  AND (?4 IS NULL OR order_id = ?4)
  AND (?5 IS NULL OR event_type = ?5)
  AND (?6 IS NULL OR created_at >= ?6)
  AND (?7 IS NULL OR created_at < ?7)
  AND (?8 IS NULL OR account IN (SELECT value FROM json_each(?8)))
ORDER BY id DESC
LIMIT ?9;

-- name: list_deliveries_of_order
SELECT * FROM deliveries
WHERE order_id = ?4 AND id < ?1
  AND (?2 IS NULL OR webhook_id = ?2)
  AND (?3 IS NULL OR state = ?3)
  AND (?5 IS NULL OR event_type = ?5)
  AND (?6 IS NULL OR created_at >= ?6)
  AND (?7 IS NULL OR created_at < ?7)
  AND (?8 IS NULL OR account IN (SELECT value FROM json_each(?8)))
ORDER BY id DESC
LIMIT ?9;

-- name: attempts_of
SELECT * FROM attempts WHERE delivery_id = ?1 ORDER BY attempt;

-- name: runtime_of_live_webhook
SELECT r.* FROM webhook_runtime AS r JOIN webhooks AS w ON w.id = r.webhook_id
WHERE r.webhook_id = ?1 AND w.deleted_at IS NULL;

-- name: delivery_counts
SELECT state, COUNT(*) AS n FROM deliveries WHERE webhook_id = ?1 GROUP BY state;

-- name: recent_durations
SELECT duration_ms FROM attempts WHERE webhook_id = ?1 ORDER BY started_at DESC LIMIT ?2;

-- name: queue_gauges
-- Per live webhook, a range of deliveries_webhook_state: only pending rows are read.
SELECT * FROM (
    SELECT w.id AS webhook_id,
        (SELECT COUNT(*) FROM deliveries AS d
         WHERE d.webhook_id = w.id AND d.state = 'pending') AS pending,
        (SELECT MIN(d.created_at) FROM deliveries AS d
         WHERE d.webhook_id = w.id AND d.state = 'pending') AS oldest
    FROM webhooks AS w WHERE w.deleted_at IS NULL
) AS gauges
WHERE pending > 0
ORDER BY webhook_id;

-- name: usage_rows
SELECT * FROM usage
WHERE (?1 IS NULL OR account IN (SELECT value FROM json_each(?1)))
  AND month IN (SELECT value FROM json_each(?2))
ORDER BY account, month, event_type;

-- name: outcome_series_of_webhook
-- Attempts started in [?2, ?3) in buckets of ?4 microseconds, with nearest-rank
-- percentiles (rank ceil(p * n)) picked from window ranks, so no row leaves the engine.
WITH picked AS (
    SELECT a.started_at / ?4 AS bucket, a.duration_ms AS duration,
        CASE WHEN a.error IS NULL AND a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END
            AS ok
    FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE a.webhook_id = ?1
      AND a.started_at >= ?2 AND a.started_at < ?3
      AND (?5 IS NULL OR d.account IN (SELECT value FROM json_each(?5)))
), ranked AS (
    SELECT bucket, duration, ok,
        ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY duration) AS position,
        COUNT(*) OVER (PARTITION BY bucket) AS n
    FROM picked
)
SELECT bucket, SUM(ok) AS succeeded, COUNT(*) - SUM(ok) AS failed,
    MAX(CASE WHEN position = (50 * n + 99) / 100 THEN duration END) AS p50,
    MAX(CASE WHEN position = (95 * n + 99) / 100 THEN duration END) AS p95,
    MAX(CASE WHEN position = (99 * n + 99) / 100 THEN duration END) AS p99
FROM ranked
GROUP BY bucket
ORDER BY bucket;

-- name: outcome_series
-- Attempts started in [?2, ?3) in buckets of ?4 microseconds, with nearest-rank
-- percentiles (rank ceil(p * n)) picked from window ranks, so no row leaves the engine.
WITH picked AS (
    SELECT a.started_at / ?4 AS bucket, a.duration_ms AS duration,
        CASE WHEN a.error IS NULL AND a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END
            AS ok
    FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE a.webhook_id IN (SELECT id FROM webhooks) AND ?1 IS NULL
      AND a.started_at >= ?2 AND a.started_at < ?3
      AND (?5 IS NULL OR d.account IN (SELECT value FROM json_each(?5)))
), ranked AS (
    SELECT bucket, duration, ok,
        ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY duration) AS position,
        COUNT(*) OVER (PARTITION BY bucket) AS n
    FROM picked
)
SELECT bucket, SUM(ok) AS succeeded, COUNT(*) - SUM(ok) AS failed,
    MAX(CASE WHEN position = (50 * n + 99) / 100 THEN duration END) AS p50,
    MAX(CASE WHEN position = (95 * n + 99) / 100 THEN duration END) AS p95,
    MAX(CASE WHEN position = (99 * n + 99) / 100 THEN duration END) AS p99
FROM ranked
GROUP BY bucket
ORDER BY bucket;

-- ============================================================ keys and audit

-- name: insert_key
INSERT INTO api_keys (id, role, accounts, name, key_hash, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6);

-- name: key_by_hash
SELECT * FROM api_keys WHERE key_hash = ?1;

-- name: key_by_id
SELECT * FROM api_keys WHERE id = ?1;

-- name: list_keys
SELECT * FROM api_keys WHERE id > ?1 ORDER BY id LIMIT ?2;

-- name: revoke_key
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1;

-- name: count_keys
SELECT COUNT(*) FROM api_keys;

-- name: insert_audit
INSERT INTO audit (id, at, actor, action, target_type, target_id, details)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7);

-- name: list_audit
SELECT * FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2;

-- ============================================================ retention

-- name: finished_before
-- Seeks in deliveries_webhook_state per webhook and finished state (deleted webhooks too).
SELECT id FROM deliveries
WHERE webhook_id IN (SELECT id FROM webhooks)
  AND state IN ('delivered', 'failed', 'cancelled') AND created_at < ?1
LIMIT ?2;

-- name: delete_attempts_of
DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?1));

-- name: delete_deliveries
DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?1));

-- name: orphan_events_before
SELECT e.id FROM events AS e
WHERE e.created_at < ?1
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = e.id)
LIMIT ?2;

-- name: delete_events
DELETE FROM events WHERE id IN (SELECT value FROM json_each(?1));
