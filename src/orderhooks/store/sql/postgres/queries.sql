-- Named queries only the PostgreSQL engine writes its own way (the rest: ../queries.sql).
-- Lists are arrays. Parameters tested with IS NULL carry a cast so their type is known.
-- Lock order of every transaction: the claim lock, account locks (sorted), order rows
-- (sorted), delivery rows (sorted), webhook_runtime rows (sorted); deadlocks left over
-- are retried.

-- ============================================================ lifecycle

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

-- ============================================================ webhook catalog

-- name: agreed_accounts
SELECT account FROM agreements WHERE account = ANY(:accounts::text[]);

-- ============================================================ ingest

-- name: lock_orders
SELECT order_id FROM orders WHERE order_id = ANY(:order_ids::text[]) ORDER BY order_id FOR UPDATE;

-- name: orders_for_ingest
-- Two API processes may update one order: the row lock makes the second wait for the
-- first's commit. (A new order has no row yet; its insert conflicts and is retried.)
SELECT * FROM orders WHERE order_id = ANY(:order_ids::text[]) ORDER BY order_id FOR UPDATE;

-- name: busy_queues
SELECT DISTINCT webhook_id, order_id FROM deliveries
WHERE order_id = ANY(:order_ids::text[]) AND state IN ('pending', 'delivering') AND NOT test;

-- name: refresh_heads
-- The head of one (webhook, order) queue is its lowest pending or delivering sequence;
-- rows already right are left alone (delivering rows are kept right too, for when their
-- lease expires).
WITH head AS (
    SELECT MIN(sequence) AS sequence FROM deliveries
    WHERE webhook_id = :webhook_id AND order_id = :order_id AND state IN ('pending',
        'delivering')
      AND NOT test
)
UPDATE deliveries AS d SET ready = (d.sequence = head.sequence)
FROM head
WHERE d.webhook_id = :webhook_id AND d.order_id = :order_id AND d.state IN ('pending',
    'delivering')
  AND NOT d.test AND d.ready IS DISTINCT FROM (d.sequence = head.sequence);

-- ============================================================ claim

-- name: serialize_claims
-- One claim at a time in the whole cluster, so slot counts, probing and rate limits
-- are exact; released at commit.
SELECT pg_advisory_xact_lock(7251001);

-- name: runtime_of
SELECT * FROM webhook_runtime WHERE webhook_id = ANY(:webhook_ids::text[]);

-- name: due_heads
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id AND ready AND state = 'pending' AND next_attempt_at <= :now
ORDER BY next_attempt_at
LIMIT :limit;

-- name: mark_delivering
UPDATE deliveries SET state = 'delivering', lease_expires_at = :lease_expires_at,
    leased_by = :leased_by
WHERE id = ANY(:ids::text[]) AND state = 'pending'
RETURNING id;

-- name: events_by_ids
SELECT * FROM events WHERE id = ANY(:ids::text[]);

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
WHERE o.order_id IN (SELECT d.order_id FROM deliveries AS d WHERE d.id = ANY(:ids::text[]))
ORDER BY o.order_id
FOR UPDATE OF o;

-- name: deliveries_for_record
SELECT * FROM deliveries WHERE id = ANY(:ids::text[]) ORDER BY id FOR UPDATE;

-- name: lock_runtime
SELECT * FROM webhook_runtime WHERE webhook_id = ANY(:webhook_ids::text[])
ORDER BY webhook_id
FOR UPDATE;

-- ============================================================ webhooks and agreements

-- name: ready_all
UPDATE deliveries SET ready = TRUE WHERE webhook_id = :webhook_id AND state = 'pending'
    AND NOT ready;

-- name: queues_of_webhook
SELECT DISTINCT order_id FROM deliveries
WHERE webhook_id = :webhook_id AND state IN ('pending', 'delivering') AND NOT test;

-- name: cancel_deliveries
UPDATE deliveries SET state = 'cancelled', ready = FALSE, lease_expires_at = NULL,
    leased_by = NULL
WHERE webhook_id = :webhook_id AND state IN ('pending', 'delivering');

-- name: reset_health
UPDATE webhook_runtime SET consecutive_failures = 0, failing_since = NULL, probing = FALSE,
    probe_at = NULL
WHERE webhook_id = :webhook_id;

-- ============================================================ manual control

-- name: requeue_delivery
UPDATE deliveries SET state = 'pending', next_attempt_at = :next_attempt_at,
    delivered_at = NULL,
    schedule_position = 0, ready = TRUE, lease_expires_at = NULL, leased_by = NULL
WHERE id = :id AND state = 'failed';

-- name: lock_orders_of_failed
SELECT o.order_id FROM orders AS o
WHERE o.order_id IN (
    SELECT d.order_id FROM deliveries AS d
    WHERE d.webhook_id = :webhook_id AND d.state = 'failed' AND d.created_at >= :since
      AND (:until::bigint IS NULL OR d.created_at < :until))
ORDER BY o.order_id
FOR UPDATE OF o;

-- name: recover_failed
UPDATE deliveries SET state = 'pending', next_attempt_at = :now, delivered_at = NULL,
    schedule_position = 0, ready = TRUE, lease_expires_at = NULL, leased_by = NULL
WHERE webhook_id = :webhook_id AND state = 'failed' AND created_at >= :since
  AND (:until::bigint IS NULL OR created_at < :until)
RETURNING order_id, test;

-- name: replay_candidates
SELECT * FROM events
WHERE (created_at, id) > (:after_created_at::bigint, :after_id::text)
    AND (:until::bigint IS NULL OR created_at < :until)
  AND NOT test
  AND (:accounts::text[] IS NULL OR account = ANY(:accounts::text[]))
  AND (:types::text[] IS NULL OR type = ANY(:types::text[]))
ORDER BY created_at, id
LIMIT :limit;

-- ============================================================ reads

-- name: events_of_order
SELECT * FROM events WHERE order_id = :order_id AND NOT test ORDER BY sequence, id;

-- name: list_events
SELECT * FROM events
WHERE id > :after AND NOT test
  AND (:order_id::text IS NULL OR order_id = :order_id)
  AND (:type::text IS NULL OR type = :type)
  AND (:account::text IS NULL OR account = :account)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND (:scope::text[] IS NULL OR account = ANY(:scope::text[]))
ORDER BY id
LIMIT :limit;

-- name: list_events_of_order
SELECT * FROM events
WHERE order_id = :order_id::text AND id > :after AND NOT test
  AND (:type::text IS NULL OR type = :type)
  AND (:account::text IS NULL OR account = :account)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND (:scope::text[] IS NULL OR account = ANY(:scope::text[]))
ORDER BY id
LIMIT :limit;

-- name: list_webhooks
SELECT * FROM webhooks AS w
WHERE w.id > :after AND w.deleted_at IS NULL
  AND (:account::text IS NULL OR EXISTS (
      SELECT 1 FROM webhook_accounts AS a WHERE a.webhook_id = w.id AND a.account = :account))
  AND (:state::text IS NULL OR w.state = :state)
  AND (:scope::text[] IS NULL OR NOT EXISTS (
      SELECT 1 FROM webhook_accounts AS a
      WHERE a.webhook_id = w.id AND a.account <> ALL(:scope::text[])))
ORDER BY w.id
LIMIT :limit;

-- name: list_deliveries
SELECT * FROM deliveries
WHERE id < :before
  AND (:webhook_id::text IS NULL OR webhook_id = :webhook_id)
  AND (:state::text IS NULL OR state = :state)
  AND (:order_id::text IS NULL OR order_id = :order_id)
  AND (:event_type::text IS NULL OR event_type = :event_type)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND (:scope::text[] IS NULL OR account = ANY(:scope::text[]))
ORDER BY id DESC
LIMIT :limit;

-- name: list_deliveries_of_webhook
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id::text AND id < :before
  AND (:state::text IS NULL OR state = :state)
  AND (:order_id::text IS NULL OR order_id = :order_id)
  AND (:event_type::text IS NULL OR event_type = :event_type)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND (:scope::text[] IS NULL OR account = ANY(:scope::text[]))
ORDER BY id DESC
LIMIT :limit;

-- name: list_deliveries_of_order
SELECT * FROM deliveries
WHERE order_id = :order_id::text AND id < :before
  AND (:webhook_id::text IS NULL OR webhook_id = :webhook_id)
  AND (:state::text IS NULL OR state = :state)
  AND (:event_type::text IS NULL OR event_type = :event_type)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND (:scope::text[] IS NULL OR account = ANY(:scope::text[]))
ORDER BY id DESC
LIMIT :limit;

-- name: queue_gauges
SELECT webhook_id, COUNT(*) AS pending, MIN(created_at) AS oldest FROM deliveries
WHERE state = 'pending'
GROUP BY webhook_id
ORDER BY webhook_id;

-- name: usage_rows
SELECT * FROM usage
WHERE (:accounts::text[] IS NULL OR account = ANY(:accounts::text[]))
  AND month = ANY(:months::text[])
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
      AND (:scope::text[] IS NULL OR d.account = ANY(:scope::text[]))
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
    WHERE a.webhook_id IN (SELECT id FROM webhooks) AND :webhook_id::text IS NULL
      AND a.started_at >= :since AND a.started_at < :until
      AND (:scope::text[] IS NULL OR d.account = ANY(:scope::text[]))
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
DELETE FROM attempts WHERE delivery_id = ANY(:delivery_ids::text[]);

-- name: delete_deliveries
DELETE FROM deliveries WHERE id = ANY(:ids::text[]);

-- name: delete_events
DELETE FROM events WHERE id = ANY(:ids::text[]);

-- ============================================================ the webhook cap

-- name: lock_account
-- One webhook creation per account at a time, so that the per-account cap is counted
-- and kept in one go; released at commit. (Two-key advisory locks are apart from the
-- one-key claim and migration locks.)
SELECT pg_advisory_xact_lock(7251003, hashtext(:account::text));
