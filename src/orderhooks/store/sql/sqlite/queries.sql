-- Named queries only the SQLite engine writes its own way (the rest: ../queries.sql).
-- Lists are passed as JSON text and read with json_each. Booleans are 0/1. The single
-- writer thread serialises every transaction, so the locking queries lock nothing.

-- ============================================================ lifecycle

-- name: relaxed_commit
-- The writer thread relaxes the fsync per group commit instead (sqlite_io.Writer).
SELECT 1;

-- ============================================================ ingest

-- name: lock_orders
-- The single writer already serialises every transaction: a plain read.
SELECT order_id FROM orders WHERE order_id IN (SELECT value FROM json_each(:order_ids));

-- name: orders_for_ingest
SELECT * FROM orders WHERE order_id IN (SELECT value FROM json_each(:order_ids)) ORDER BY order_id;

-- name: record_messages
-- The digests not recorded yet for this source are inserted and returned: the messages
-- to ingest. (WHERE TRUE keeps SQLite from reading ON CONFLICT as a join constraint.)
INSERT INTO consumed_messages (source_id, digest, consumed_at)
SELECT :source_id, value, :consumed_at FROM json_each(:digests) WHERE TRUE
ON CONFLICT DO NOTHING
RETURNING digest;

-- name: refresh_heads
-- The head of one (webhook, order) queue is its pending or delivering delivery of the
-- lowest sequence. Among equals (an event and its replays) the one in flight stays the
-- head, else the earliest created (lowest id): a replay of an event whose first
-- delivery is still waiting queues behind it, and a failed first delivery retried while
-- its replay is in flight waits for that one, so one event is never sent twice at once.
-- Delivering rows are set too (harmless, and right again if their lease expires). Only
-- the rows whose flag changes are written: a write moves the row's deliveries_due entry.
-- INDEXED BY: an order's deliveries are a few rows; by webhook and state (what the
-- planner would pick without statistics) they are the webhook's backlog.
WITH head (first_id) AS (
    SELECT q.id FROM deliveries AS q INDEXED BY deliveries_order
    WHERE q.order_id = :order_id AND q.webhook_id = :webhook_id
      AND q.state IN ('pending', 'delivering') AND q.test = 0
    ORDER BY q.sequence, CASE WHEN q.state = 'delivering' THEN 0 ELSE 1 END, q.id LIMIT 1)
UPDATE deliveries INDEXED BY deliveries_order
SET ready = (id = (SELECT first_id FROM head))
WHERE order_id = :order_id AND webhook_id = :webhook_id
  AND state IN ('pending', 'delivering') AND test = 0
  AND ready IS NOT (id = (SELECT first_id FROM head));

-- ============================================================ claim

-- name: share_ordering
-- The single writer already serialises a change of `ordering` with the transactions that
-- mark queue heads by it.
SELECT 1;

-- name: lock_ordering
SELECT 1;

-- name: serialize_claims
-- The single writer already serialises claims.
SELECT 1;

-- name: next_due_at
-- Per webhook one seek in deliveries_due; a probing webhook is due at its probe time.
SELECT MIN(due) FROM (
    SELECT MAX(
        -- A batching webhook's earliest head waits its maxWaitMs for company.
        (SELECT MIN(d.next_attempt_at) FROM deliveries AS d
         WHERE d.webhook_id = w.id AND d.ready = 1 AND d.state = 'pending')
            + COALESCE(w.batch_max_wait_ms, 0) * 1000,
        CASE WHEN r.probing = 1 THEN COALESCE(r.probe_at, 0) ELSE 0 END) AS due
    FROM webhooks AS w JOIN webhook_runtime AS r ON r.webhook_id = w.id
    WHERE w.state = 'active' AND w.deleted_at IS NULL
      -- A webhook without a free slot is not due: a finished attempt wakes the workers.
      AND (SELECT COUNT(DISTINCT COALESCE(f.batch_id, f.id)) FROM deliveries AS f
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

-- ============================================================ manual control

-- name: lock_orders_of_failed
-- Nothing to lock: the single writer serialises every transaction.
SELECT :webhook_id, :since, :until WHERE 0;

-- name: lock_webhook
-- Nothing to lock: the single writer serialises every transaction.
SELECT :id WHERE 0;

-- name: hold_webhook
-- Nothing to lock: the single writer serialises every transaction.
SELECT :id WHERE 0;

-- name: share_webhooks
-- Nothing to lock: the single writer serialises every transaction.
SELECT :ids WHERE 0;

-- ============================================================ reads

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

-- ============================================================ the webhook cap

-- name: lock_account
-- Nothing to lock: the single writer serialises every transaction.
SELECT :account WHERE 0;

-- name: webhook_secrets_batch
-- A batch of `secrets reencrypt` (the writer's transaction is the only one writing).
SELECT id, secrets, headers, tls FROM webhooks WHERE id > :after ORDER BY id LIMIT :limit;

-- name: bump_webhooks_version
-- A new random value, not the next number: a transaction that bumped the version and was
-- rolled back leaves no number for the next change to reuse, so a webhook list cached
-- under it (read inside that transaction) is never taken for the committed one.
UPDATE meta SET value = random() WHERE name = 'webhooks_version';

-- ============================================================ retention

-- name: finished_before
-- Seeks in deliveries_webhook_state per webhook and finished state (deleted webhooks too).
-- (The writer's transaction is the only one writing: nothing requeues them meanwhile.)
SELECT id FROM deliveries
WHERE webhook_id IN (SELECT id FROM webhooks)
  AND state IN ('delivered', 'failed', 'cancelled') AND created_at < :before
LIMIT :limit;

-- ============================================================ reads

-- name: list_failed_delivery_events_of_order
-- The `delivery.failed` events (`:type`) of one order, for admin keys only (a partner key
-- never lists operational events). Their rows have no order_id (they stand outside every
-- per-order queue): their order is the one their data names, which their envelope
-- carries as `orderId`.
SELECT * FROM events INDEXED BY events_type
WHERE type = :type AND id > :after AND test = 0
  AND data ->> 'orderId' = :order_id
  AND (:account IS NULL OR account = :account)
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND :scope IS NULL
ORDER BY id
LIMIT :limit;

-- name: lock_keys
-- Nothing to lock: the single writer serialises every transaction.
SELECT 1;
