-- Named queries of the PostgreSQL engine. Each block starts with `-- name: <name>`; the
-- SQLite file has the same names with the same parameters (?n there, $n here).
-- Lists are arrays. Parameters tested with IS NULL carry a cast so their type is known.
-- Lock order of every transaction: the claim lock, order rows (sorted), delivery rows
-- (sorted), webhook_runtime rows (sorted); deadlocks left over are retried.

-- ============================================================ lifecycle

-- name: ping
SELECT 1;

-- name: notify_work
SELECT pg_notify('orderhooks_work', '');

-- name: relaxed_commit
-- Delivery bookkeeping (claims, outcomes) need not wait for the WAL flush: the WAL writer
-- flushes it within wal_writer_delay, and a later synchronous commit flushes it first.
SET LOCAL synchronous_commit = off;

-- name: lock_migrations
-- Session lock: one `migrate` at a time, whatever other processes run.
SELECT pg_advisory_lock(7251002);

-- name: unlock_migrations
SELECT pg_advisory_unlock(7251002);

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- name: applied_migrations
SELECT name FROM schema_migrations ORDER BY name;

-- name: insert_migration
INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2);

-- ============================================================ webhook catalog

-- name: webhooks_version
SELECT value FROM meta WHERE name = 'webhooks_version';

-- name: bump_webhooks_version
UPDATE meta SET value = value + 1 WHERE name = 'webhooks_version';

-- name: live_webhooks
SELECT * FROM webhooks WHERE deleted_at IS NULL ORDER BY id;

-- name: agreed_accounts
SELECT account FROM agreements WHERE account = ANY($1::text[]);

-- ============================================================ ingest

-- name: lock_orders
SELECT order_id FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE;

-- name: orders_for_ingest
-- Two API processes may update one order: the row lock makes the second wait for the
-- first's commit. (A new order has no row yet; its insert conflicts and is retried.)
SELECT * FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE;

-- name: busy_queues
SELECT DISTINCT webhook_id, order_id FROM deliveries
WHERE order_id = ANY($1::text[]) AND state IN ('pending', 'delivering') AND NOT test;

-- name: insert_order
INSERT INTO orders (order_id, account, location, channel_link, channel, status, document,
                    body_hash, courier, next_sequence, max_flow_status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);

-- name: update_order
UPDATE orders SET account = $2, location = $3, channel_link = $4, channel = $5, status = $6,
    document = $7, body_hash = $8, courier = $9, next_sequence = $10, max_flow_status = $11,
    created_at = $12, updated_at = $13
WHERE order_id = $1;

-- name: insert_event
INSERT INTO events (id, type, order_id, account, location, channel_link, channel, sequence,
                    created_at, data, status, test)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12);

-- name: insert_delivery
INSERT INTO deliveries (id, webhook_id, event_id, event_type, order_id, account, sequence,
                        state, replay, test, ready, created_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11, $12);

-- name: refresh_heads
-- The head of one (webhook, order) queue is its lowest pending or delivering sequence;
-- rows already right are left alone (delivering rows are kept right too, for when their
-- lease expires).
WITH head AS (
    SELECT MIN(sequence) AS sequence FROM deliveries
    WHERE webhook_id = $1 AND order_id = $2 AND state IN ('pending', 'delivering')
      AND NOT test
)
UPDATE deliveries AS d SET ready = (d.sequence = head.sequence)
FROM head
WHERE d.webhook_id = $1 AND d.order_id = $2 AND d.state IN ('pending', 'delivering')
  AND NOT d.test AND d.ready IS DISTINCT FROM (d.sequence = head.sequence);

-- ============================================================ claim

-- name: serialize_claims
-- One claim at a time in the whole cluster, so slot counts, probing and rate limits
-- are exact; released at commit.
SELECT pg_advisory_xact_lock(7251001);

-- name: expire_leases
UPDATE deliveries SET state = 'pending', lease_expires_at = NULL, leased_by = NULL
WHERE state = 'delivering' AND lease_expires_at <= $1;

-- name: in_flight
SELECT webhook_id, COUNT(*) AS n FROM deliveries
WHERE state = 'delivering' AND webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NULL)
GROUP BY webhook_id;

-- name: runtime_of
SELECT * FROM webhook_runtime WHERE webhook_id = ANY($1::text[]);

-- name: due_heads
SELECT * FROM deliveries
WHERE webhook_id = $1 AND ready AND state = 'pending' AND next_attempt_at <= $2
ORDER BY next_attempt_at
LIMIT $3;

-- name: mark_delivering
UPDATE deliveries SET state = 'delivering', lease_expires_at = $2, leased_by = $3
WHERE id = ANY($1::text[]) AND state = 'pending'
RETURNING id;

-- name: spend_tokens
UPDATE webhook_runtime SET rate_tokens = $2, rate_refilled_at = $3 WHERE webhook_id = $1;

-- name: events_by_ids
SELECT * FROM events WHERE id = ANY($1::text[]);

-- name: next_due_at
-- Per webhook one seek in deliveries_due; a probing webhook is due at its probe time.
SELECT MIN(due) FROM (
    SELECT CASE
        WHEN h.first_due IS NULL THEN NULL
        WHEN r.probing THEN GREATEST(h.first_due, COALESCE(r.probe_at, 0))
        ELSE h.first_due
    END AS due
    FROM webhooks AS w
    JOIN webhook_runtime AS r ON r.webhook_id = w.id
    CROSS JOIN LATERAL (
        SELECT MIN(d.next_attempt_at) AS first_due FROM deliveries AS d
        WHERE d.webhook_id = w.id AND d.ready AND d.state = 'pending'
    ) AS h
    WHERE w.state = 'active' AND w.deleted_at IS NULL
      -- A webhook without a free slot is not due: a finished attempt wakes the workers.
      AND (SELECT COUNT(*) FROM deliveries AS f
           WHERE f.webhook_id = w.id AND f.state = 'delivering') < w.max_concurrency
) AS dues;

-- ============================================================ record

-- name: lock_orders_of_deliveries
SELECT o.order_id FROM orders AS o
WHERE o.order_id IN (SELECT d.order_id FROM deliveries AS d WHERE d.id = ANY($1::text[]))
ORDER BY o.order_id
FOR UPDATE OF o;

-- name: deliveries_for_record
SELECT * FROM deliveries WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE;

-- name: insert_attempt
-- A lease that expired while its attempt was still running gives the same attempt
-- number twice; the first one recorded stays.
INSERT INTO attempts (delivery_id, attempt, webhook_id, started_at, duration_ms, status_code,
                      response_body, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (delivery_id, attempt) DO NOTHING;

-- name: advance_delivery
UPDATE deliveries SET state = $2, next_attempt_at = $3, delivered_at = $4, attempt_count = $5,
    schedule_position = $6, lease_expires_at = NULL, leased_by = NULL
WHERE id = $1;

-- name: add_usage
INSERT INTO usage (account, month, event_type, delivered, replayed)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account, month, event_type) DO UPDATE
SET delivered = usage.delivered + excluded.delivered,
    replayed = usage.replayed + excluded.replayed;

-- name: lock_runtime
SELECT * FROM webhook_runtime WHERE webhook_id = ANY($1::text[])
ORDER BY webhook_id
FOR UPDATE;

-- name: update_health
UPDATE webhook_runtime SET consecutive_failures = $2, failing_since = $3,
    last_success_at = $4, last_failure_at = $5, probing = $6, probe_at = $7
WHERE webhook_id = $1;

-- name: disable_webhook
UPDATE webhooks SET state = 'disabled', disabled_reason = $2, disabled_at = $3,
    updated_at = $3
WHERE id = $1 AND state <> 'disabled' AND deleted_at IS NULL;

-- ============================================================ webhooks and agreements

-- name: webhook_by_id
SELECT * FROM webhooks WHERE id = $1 AND deleted_at IS NULL;

-- name: insert_webhook
INSERT INTO webhooks (id, url, description, accounts, event_types, secrets, locations,
                      channel_links, channels, new_order_trigger, status_filter,
                      courier_status_filter, payload_format, headers, timeout_seconds,
                      retry_schedule, max_concurrency, rate_limit_per_second, ordering, state,
                      disabled_reason, disabled_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24);

-- name: update_webhook
UPDATE webhooks SET url = $2, description = $3, accounts = $4, event_types = $5, secrets = $6,
    locations = $7, channel_links = $8, channels = $9, new_order_trigger = $10,
    status_filter = $11, courier_status_filter = $12, payload_format = $13, headers = $14,
    timeout_seconds = $15, retry_schedule = $16, max_concurrency = $17,
    rate_limit_per_second = $18, ordering = $19, state = $20, disabled_reason = $21,
    disabled_at = $22, created_at = $23, updated_at = $24
WHERE id = $1;

-- name: insert_runtime
INSERT INTO webhook_runtime (webhook_id) VALUES ($1);

-- name: delete_webhook_accounts
DELETE FROM webhook_accounts WHERE webhook_id = $1;

-- name: insert_webhook_account
INSERT INTO webhook_accounts (webhook_id, account) VALUES ($1, $2);

-- name: ready_all
UPDATE deliveries SET ready = TRUE WHERE webhook_id = $1 AND state = 'pending' AND NOT ready;

-- name: queues_of_webhook
SELECT DISTINCT order_id FROM deliveries
WHERE webhook_id = $1 AND state IN ('pending', 'delivering') AND NOT test;

-- name: mark_webhook_deleted
UPDATE webhooks SET deleted_at = $2, updated_at = $2 WHERE id = $1;

-- name: cancel_deliveries
UPDATE deliveries SET state = 'cancelled', ready = FALSE, lease_expires_at = NULL,
    leased_by = NULL
WHERE webhook_id = $1 AND state IN ('pending', 'delivering');

-- name: reset_health
UPDATE webhook_runtime SET consecutive_failures = 0, failing_since = NULL, probing = FALSE,
    probe_at = NULL
WHERE webhook_id = $1;

-- name: set_webhook_state
UPDATE webhooks SET state = $2, disabled_reason = $3, disabled_at = $4, updated_at = $5
WHERE id = $1;

-- name: upsert_agreement
INSERT INTO agreements (account, signed_by, signed_at, currency, per_thousand, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (account) DO UPDATE
SET signed_by = excluded.signed_by, signed_at = excluded.signed_at,
    currency = excluded.currency, per_thousand = excluded.per_thousand,
    recorded_at = excluded.recorded_at;

-- name: awaiting_webhooks_of
SELECT w.* FROM webhooks AS w JOIN webhook_accounts AS a ON a.webhook_id = w.id
WHERE a.account = $1 AND w.state = 'awaiting_agreement' AND w.deleted_at IS NULL
ORDER BY w.id;

-- name: count_webhooks_of
SELECT COUNT(*) FROM webhook_accounts AS a JOIN webhooks AS w ON w.id = a.webhook_id
WHERE a.account = $1 AND w.deleted_at IS NULL;

-- name: agreement_of
SELECT * FROM agreements WHERE account = $1;

-- ============================================================ manual control

-- name: delivery_by_id
SELECT * FROM deliveries WHERE id = $1;

-- name: make_due
UPDATE deliveries SET next_attempt_at = $2 WHERE id = $1 AND state = 'pending';

-- name: requeue_delivery
UPDATE deliveries SET state = 'pending', next_attempt_at = $2, delivered_at = NULL,
    schedule_position = 0, ready = TRUE, lease_expires_at = NULL, leased_by = NULL
WHERE id = $1 AND state = 'failed';

-- name: lock_orders_of_failed
SELECT o.order_id FROM orders AS o
WHERE o.order_id IN (
    SELECT d.order_id FROM deliveries AS d
    WHERE d.webhook_id = $1 AND d.state = 'failed' AND d.created_at >= $2
      AND ($3::bigint IS NULL OR d.created_at < $3))
ORDER BY o.order_id
FOR UPDATE OF o;

-- name: recover_failed
UPDATE deliveries SET state = 'pending', next_attempt_at = $4, delivered_at = NULL,
    schedule_position = 0, ready = TRUE, lease_expires_at = NULL, leased_by = NULL
WHERE webhook_id = $1 AND state = 'failed' AND created_at >= $2
  AND ($3::bigint IS NULL OR created_at < $3)
RETURNING order_id, test;

-- name: replay_candidates
SELECT * FROM events
WHERE (created_at, id) > ($1::bigint, $2::text) AND ($3::bigint IS NULL OR created_at < $3)
  AND NOT test
  AND ($4::text[] IS NULL OR account = ANY($4::text[]))
  AND ($5::text[] IS NULL OR type = ANY($5::text[]))
ORDER BY created_at, id
LIMIT $6;

-- ============================================================ reads

-- name: order_by_id
SELECT * FROM orders WHERE order_id = $1;

-- name: events_of_order
SELECT * FROM events WHERE order_id = $1 AND NOT test ORDER BY sequence, id;

-- name: event_by_id
SELECT * FROM events WHERE id = $1;

-- name: list_events
SELECT * FROM events
WHERE id > $1 AND NOT test
  AND ($2::text IS NULL OR order_id = $2)
  AND ($3::text IS NULL OR type = $3)
  AND ($4::text IS NULL OR account = $4)
  AND ($5::bigint IS NULL OR created_at >= $5)
  AND ($6::bigint IS NULL OR created_at < $6)
  AND ($7::text[] IS NULL OR account = ANY($7::text[]))
ORDER BY id
LIMIT $8;

-- name: list_events_of_order
SELECT * FROM events
WHERE order_id = $2::text AND id > $1 AND NOT test
  AND ($3::text IS NULL OR type = $3)
  AND ($4::text IS NULL OR account = $4)
  AND ($5::bigint IS NULL OR created_at >= $5)
  AND ($6::bigint IS NULL OR created_at < $6)
  AND ($7::text[] IS NULL OR account = ANY($7::text[]))
ORDER BY id
LIMIT $8;

-- name: list_webhooks
SELECT * FROM webhooks AS w
WHERE w.id > $1 AND w.deleted_at IS NULL
  AND ($2::text IS NULL OR EXISTS (
      SELECT 1 FROM webhook_accounts AS a WHERE a.webhook_id = w.id AND a.account = $2))
  AND ($3::text IS NULL OR w.state = $3)
  AND ($4::text[] IS NULL OR NOT EXISTS (
      SELECT 1 FROM webhook_accounts AS a
      WHERE a.webhook_id = w.id AND a.account <> ALL($4::text[])))
ORDER BY w.id
LIMIT $5;

-- name: list_deliveries
SELECT * FROM deliveries
WHERE id < $1
  AND ($2::text IS NULL OR webhook_id = $2)
  AND ($3::text IS NULL OR state = $3)
  AND ($4::text IS NULL OR order_id = $4)
  AND ($5::text IS NULL OR event_type = $5)
  AND ($6::bigint IS NULL OR created_at >= $6)
  AND ($7::bigint IS NULL OR created_at < $7)
  AND ($8::text[] IS NULL OR account = ANY($8::text[]))
ORDER BY id DESC
LIMIT $9;

-- name: list_deliveries_of_webhook
SELECT * FROM deliveries
WHERE webhook_id = $2::text AND id < $1
  AND ($3::text IS NULL OR state = $3)
  AND ($4::text IS NULL OR order_id = $4)
  AND ($5::text IS NULL OR event_type = $5)
  AND ($6::bigint IS NULL OR created_at >= $6)
  AND ($7::bigint IS NULL OR created_at < $7)
  AND ($8::text[] IS NULL OR account = ANY($8::text[]))
ORDER BY id DESC
LIMIT $9;

-- name: list_deliveries_of_order
SELECT * FROM deliveries
WHERE order_id = $4::text AND id < $1
  AND ($2::text IS NULL OR webhook_id = $2)
  AND ($3::text IS NULL OR state = $3)
  AND ($5::text IS NULL OR event_type = $5)
  AND ($6::bigint IS NULL OR created_at >= $6)
  AND ($7::bigint IS NULL OR created_at < $7)
  AND ($8::text[] IS NULL OR account = ANY($8::text[]))
ORDER BY id DESC
LIMIT $9;

-- name: attempts_of
SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY attempt;

-- name: runtime_of_live_webhook
SELECT r.* FROM webhook_runtime AS r JOIN webhooks AS w ON w.id = r.webhook_id
WHERE r.webhook_id = $1 AND w.deleted_at IS NULL;

-- name: delivery_counts
SELECT state, COUNT(*) AS n FROM deliveries WHERE webhook_id = $1 GROUP BY state;

-- name: recent_durations
SELECT duration_ms FROM attempts WHERE webhook_id = $1 ORDER BY started_at DESC LIMIT $2;

-- name: queue_gauges
SELECT webhook_id, COUNT(*) AS pending, MIN(created_at) AS oldest FROM deliveries
WHERE state = 'pending'
GROUP BY webhook_id
ORDER BY webhook_id;

-- name: usage_rows
SELECT * FROM usage
WHERE ($1::text[] IS NULL OR account = ANY($1::text[]))
  AND month = ANY($2::text[])
ORDER BY account, month, event_type;

-- name: outcome_series_of_webhook
-- Attempts started in [$2, $3) in buckets of $4 microseconds, with nearest-rank
-- percentiles (rank ceil(p * n)) picked from window ranks, so no row leaves the engine.
WITH picked AS (
    SELECT a.started_at / $4 AS bucket, a.duration_ms AS duration,
        CASE WHEN a.error IS NULL AND a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END
            AS ok
    FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE a.webhook_id = $1
      AND a.started_at >= $2 AND a.started_at < $3
      AND ($5::text[] IS NULL OR d.account = ANY($5::text[]))
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
-- Attempts started in [$2, $3) in buckets of $4 microseconds, with nearest-rank
-- percentiles (rank ceil(p * n)) picked from window ranks, so no row leaves the engine.
WITH picked AS (
    SELECT a.started_at / $4 AS bucket, a.duration_ms AS duration,
        CASE WHEN a.error IS NULL AND a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END
            AS ok
    FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE a.webhook_id IN (SELECT id FROM webhooks) AND $1::text IS NULL
      AND a.started_at >= $2 AND a.started_at < $3
      AND ($5::text[] IS NULL OR d.account = ANY($5::text[]))
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
VALUES ($1, $2, $3, $4, $5, $6);

-- name: key_by_hash
SELECT * FROM api_keys WHERE key_hash = $1;

-- name: key_by_id
SELECT * FROM api_keys WHERE id = $1;

-- name: list_keys
SELECT * FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2;

-- name: revoke_key
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1;

-- name: count_keys
SELECT COUNT(*) FROM api_keys;

-- name: insert_audit
INSERT INTO audit (id, at, actor, action, target_type, target_id, details)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: list_audit
SELECT * FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2;

-- ============================================================ retention

-- name: finished_before
-- Seeks in deliveries_webhook_state per webhook and finished state (deleted webhooks too).
SELECT id FROM deliveries
WHERE webhook_id IN (SELECT id FROM webhooks)
  AND state IN ('delivered', 'failed', 'cancelled') AND created_at < $1
LIMIT $2;

-- name: delete_attempts_of
DELETE FROM attempts WHERE delivery_id = ANY($1::text[]);

-- name: delete_deliveries
DELETE FROM deliveries WHERE id = ANY($1::text[]);

-- name: orphan_events_before
SELECT e.id FROM events AS e
WHERE e.created_at < $1
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = e.id)
LIMIT $2;

-- name: delete_events
DELETE FROM events WHERE id = ANY($1::text[]);
