-- Named queries only the SQLite engine writes its own way (the rest: ../queries.sql).
-- Lists are passed as JSON text and read with json_each. Booleans are 0/1. The single
-- writer thread serialises every transaction, so the locking queries lock nothing.

-- ============================================================ lifecycle

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
);

-- name: relaxed_commit
-- The writer thread relaxes the fsync per group commit instead (sqlite_io.Writer).
SELECT 1;

-- ============================================================ webhook catalog

-- name: agreed_accounts
SELECT account FROM agreements WHERE account IN (SELECT value FROM json_each(:accounts));

-- ============================================================ ingest

-- name: lock_orders
-- The single writer already serialises every transaction: a plain read.
SELECT order_id FROM orders WHERE order_id IN (SELECT value FROM json_each(:order_ids));

-- name: orders_for_ingest
SELECT * FROM orders WHERE order_id IN (SELECT value FROM json_each(:order_ids)) ORDER BY order_id;

-- name: busy_queues
SELECT DISTINCT webhook_id, order_id FROM deliveries
WHERE order_id IN (SELECT value FROM json_each(:order_ids))
  AND state IN ('pending', 'delivering') AND test = 0;

-- name: refresh_heads
-- The head of one (webhook, order) queue is its lowest pending or delivering sequence.
-- Delivering rows are set too (harmless, and right again if their lease expires); the
-- IN keeps both sides on deliveries_queue, a few rows, never the webhook's backlog.
UPDATE deliveries SET ready = (sequence = (
    SELECT MIN(q.sequence) FROM deliveries AS q
    WHERE q.webhook_id = :webhook_id AND q.order_id = :order_id
      AND q.state IN ('pending', 'delivering') AND q.test = 0))
WHERE webhook_id = :webhook_id AND order_id = :order_id AND state IN ('pending',
    'delivering') AND test = 0;

-- ============================================================ claim

-- name: serialize_claims
-- The single writer already serialises claims.
SELECT 1;

-- name: runtime_of
SELECT * FROM webhook_runtime WHERE webhook_id IN (SELECT value FROM json_each(:webhook_ids));

-- name: due_heads
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id AND ready = 1 AND state = 'pending' AND next_attempt_at <= :now
ORDER BY next_attempt_at
LIMIT :limit;

-- name: mark_delivering
UPDATE deliveries SET state = 'delivering', lease_expires_at = :lease_expires_at,
    leased_by = :leased_by
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'pending'
RETURNING id;

-- name: events_by_ids
SELECT * FROM events WHERE id IN (SELECT value FROM json_each(:ids));

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
SELECT :ids WHERE 0;

-- name: deliveries_for_record
SELECT * FROM deliveries WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id;

-- name: lock_runtime
SELECT * FROM webhook_runtime WHERE webhook_id IN (SELECT value FROM json_each(:webhook_ids))
ORDER BY webhook_id;

-- ============================================================ webhooks and agreements

-- name: ready_all
UPDATE deliveries SET ready = 1 WHERE webhook_id = :webhook_id AND state = 'pending'
    AND ready = 0;

-- name: queues_of_webhook
SELECT DISTINCT order_id FROM deliveries
WHERE webhook_id = :webhook_id AND state IN ('pending', 'delivering') AND test = 0;

-- name: cancel_deliveries
UPDATE deliveries SET state = 'cancelled', ready = 0, lease_expires_at = NULL, leased_by = NULL
WHERE webhook_id = :webhook_id AND state IN ('pending', 'delivering');

-- name: reset_health
UPDATE webhook_runtime SET consecutive_failures = 0, failing_since = NULL, probing = 0,
    probe_at = NULL
WHERE webhook_id = :webhook_id;

-- ============================================================ manual control

-- name: requeue_delivery
UPDATE deliveries SET state = 'pending', next_attempt_at = :next_attempt_at,
    delivered_at = NULL,
    schedule_position = 0, ready = 1, lease_expires_at = NULL, leased_by = NULL
WHERE id = :id AND state = 'failed';

-- name: lock_orders_of_failed
-- Nothing to lock: the single writer serialises every transaction.
SELECT :webhook_id, :since, :until WHERE 0;

-- name: recover_failed
UPDATE deliveries SET state = 'pending', next_attempt_at = :now, delivered_at = NULL,
    schedule_position = 0, ready = 1, lease_expires_at = NULL, leased_by = NULL
WHERE webhook_id = :webhook_id AND state = 'failed' AND created_at >= :since
  AND (:until IS NULL OR created_at < :until)
RETURNING order_id, test;

-- name: replay_candidates
SELECT * FROM events
WHERE (created_at, id) > (:after_created_at, :after_id)
    AND (:until IS NULL OR created_at < :until) AND test = 0
  AND (:accounts IS NULL OR account IN (SELECT value FROM json_each(:accounts)))
  AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
ORDER BY created_at, id
LIMIT :limit;

-- ============================================================ reads

-- name: events_of_order
SELECT * FROM events WHERE order_id = :order_id AND test = 0 ORDER BY sequence, id;

-- name: list_events
SELECT * FROM events
WHERE id > :after AND test = 0
  AND (:order_id IS NULL OR order_id = :order_id)
  AND (:type IS NULL OR type = :type)
  AND (:account IS NULL OR account = :account)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:scope IS NULL OR account IN (SELECT value FROM json_each(:scope)))
ORDER BY id
LIMIT :limit;

-- name: list_events_of_order
SELECT * FROM events
WHERE order_id = :order_id AND id > :after AND test = 0
  AND (:type IS NULL OR type = :type)
  AND (:account IS NULL OR account = :account)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:scope IS NULL OR account IN (SELECT value FROM json_each(:scope)))
ORDER BY id
LIMIT :limit;

-- name: list_webhooks
SELECT * FROM webhooks AS w
WHERE w.id > :after AND w.deleted_at IS NULL
  AND (:account IS NULL OR EXISTS (
      SELECT 1 FROM webhook_accounts AS a WHERE a.webhook_id = w.id AND a.account = :account))
  AND (:state IS NULL OR w.state = :state)
  AND (:scope IS NULL OR NOT EXISTS (
      SELECT 1 FROM webhook_accounts AS a
      WHERE a.webhook_id = w.id AND a.account NOT IN (SELECT value FROM json_each(:scope))))
ORDER BY w.id
LIMIT :limit;

-- name: list_deliveries
SELECT * FROM deliveries
WHERE id < :before
  AND (:webhook_id IS NULL OR webhook_id = :webhook_id)
  AND (:state IS NULL OR state = :state)
  AND (:order_id IS NULL OR order_id = :order_id)
  AND (:event_type IS NULL OR event_type = :event_type)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:scope IS NULL OR account IN (SELECT value FROM json_each(:scope)))
ORDER BY id DESC
LIMIT :limit;

-- name: list_deliveries_of_webhook
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id AND id < :before
  AND (:state IS NULL OR state = :state)
  AND (:order_id IS NULL OR order_id = :order_id)
  AND (:event_type IS NULL OR event_type = :event_type)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:scope IS NULL OR account IN (SELECT value FROM json_each(:scope)))
ORDER BY id DESC
LIMIT :limit;

-- name: list_deliveries_of_order
SELECT * FROM deliveries
WHERE order_id = :order_id AND id < :before
  AND (:webhook_id IS NULL OR webhook_id = :webhook_id)
  AND (:state IS NULL OR state = :state)
  AND (:event_type IS NULL OR event_type = :event_type)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:scope IS NULL OR account IN (SELECT value FROM json_each(:scope)))
ORDER BY id DESC
LIMIT :limit;

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
WHERE (:accounts IS NULL OR account IN (SELECT value FROM json_each(:accounts)))
  AND month IN (SELECT value FROM json_each(:months))
ORDER BY account, month, event_type;

-- name: outcome_series_of_webhook
-- Attempts started in [:since, :until) in buckets of :bucket_us microseconds, with
-- nearest-rank percentiles (rank ceil(p * n)) picked from window ranks, so no row leaves
-- the engine.
WITH picked AS (
    SELECT a.started_at / :bucket_us AS bucket, a.duration_ms AS duration,
        CASE WHEN a.error IS NULL AND a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END
            AS ok
    FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE a.webhook_id = :webhook_id
      AND a.started_at >= :since AND a.started_at < :until
      AND (:scope IS NULL OR d.account IN (SELECT value FROM json_each(:scope)))
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
-- Attempts started in [:since, :until) in buckets of :bucket_us microseconds, with
-- nearest-rank percentiles (rank ceil(p * n)) picked from window ranks, so no row leaves
-- the engine.
WITH picked AS (
    SELECT a.started_at / :bucket_us AS bucket, a.duration_ms AS duration,
        CASE WHEN a.error IS NULL AND a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END
            AS ok
    FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE a.webhook_id IN (SELECT id FROM webhooks) AND :webhook_id IS NULL
      AND a.started_at >= :since AND a.started_at < :until
      AND (:scope IS NULL OR d.account IN (SELECT value FROM json_each(:scope)))
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

-- ============================================================ retention

-- name: delete_attempts_of
DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(:delivery_ids));

-- name: delete_deliveries
DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(:ids));

-- name: delete_events
DELETE FROM events WHERE id IN (SELECT value FROM json_each(:ids));

-- ============================================================ the webhook cap

-- name: lock_account
-- Nothing to lock: the single writer serialises every transaction.
SELECT :account WHERE 0;
