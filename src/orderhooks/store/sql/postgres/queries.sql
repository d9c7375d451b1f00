-- Named queries only the PostgreSQL engine writes its own way (the rest: ../queries.sql).
-- Lists are arrays. Parameters tested with IS NULL carry a cast so their type is known.
-- Lock order of every transaction: the claim lock, the ordering lock, account locks
-- (sorted), consumed message keys (sorted), order rows (sorted), webhook locks (sorted;
-- see share_webhooks), delivery rows (sorted), webhook_runtime rows (sorted); deadlocks
-- left over are retried.

-- ============================================================ lifecycle

-- name: migration_lock_timeout
-- How long a migration's statements wait for a lock, for its transaction only.
SELECT set_config('lock_timeout', :lock_timeout::text, TRUE);

-- name: notify_work
-- The payload names the sending process, whose own listener skips it (its workers were
-- woken in the process already).
SELECT pg_notify('orderhooks_work', :sender::text);

-- name: relaxed_commit
-- Delivery bookkeeping (claims, outcomes) need not wait for the WAL flush: the WAL writer
-- flushes it within wal_writer_delay, and a later synchronous commit flushes it first.
-- A claim holds the cluster's claim lock: should its worker stop talking in the middle
-- (a frozen process or VM, a silent network partition), the server ends the transaction
-- after 10 s idle instead of keeping every worker from claiming until TCP gives up.
-- Two statements: this one runs without parameters, in one round trip.
SET LOCAL synchronous_commit = off; SET LOCAL idle_in_transaction_session_timeout = '10s';

-- name: lock_migrations
-- Session lock: one `migrate` at a time, whatever other processes run.
SELECT pg_advisory_lock(7251002);

-- name: unlock_migrations
SELECT pg_advisory_unlock(7251002);

-- ============================================================ ingest

-- name: lock_orders
SELECT order_id FROM orders WHERE order_id = ANY(:order_ids::text[]) ORDER BY order_id FOR UPDATE;

-- name: orders_for_ingest
-- Two API processes may update one order: the row lock makes the second wait for the
-- first's commit. (A new order has no row yet; its insert conflicts and is retried.)
SELECT * FROM orders WHERE order_id = ANY(:order_ids::text[]) ORDER BY order_id FOR UPDATE;

-- name: record_messages
-- The digests not recorded yet for this source are inserted and returned: the messages
-- to ingest. A digest another transaction inserted and has not committed yet waits for
-- it: after its commit this one skips the message, after its rollback takes it. Sorted,
-- so two consumers of one source wait for each other in one order.
INSERT INTO consumed_messages (source_id, digest, consumed_at)
SELECT :source_id, d.digest, :consumed_at FROM unnest(:digests::text[]) AS d(digest)
ORDER BY d.digest
ON CONFLICT DO NOTHING
RETURNING digest;

-- name: refresh_heads
-- The head of one (webhook, order) queue is its pending or delivering delivery of the
-- lowest sequence. Among equals (an event and its replays) the one in flight stays the
-- head, else the earliest created (lowest id): a replay of an event whose first
-- delivery is still waiting queues behind it, and a failed first delivery retried while
-- its replay is in flight waits for that one, so one event is never sent twice at once.
-- Rows already right are left alone (delivering rows are kept right too, for when their
-- lease expires).
-- The queue's rows are locked first, and the head chosen among them as locked: a claim
-- marks a row `delivering` without the order's lock, and read as of this statement's
-- start, a replay being claimed (not committed yet) would still be pending, and its
-- event's first delivery, retried now, would become the head beside it in flight.
-- FOR UPDATE waits for that claim and returns the row as it committed it.
WITH queue AS MATERIALIZED (
    SELECT id, sequence, state FROM deliveries
    WHERE webhook_id = :webhook_id AND order_id = :order_id AND state IN ('pending',
        'delivering')
      AND NOT test
    FOR UPDATE
),
head AS (
    SELECT id FROM queue
    ORDER BY sequence, CASE WHEN state = 'delivering' THEN 0 ELSE 1 END, id LIMIT 1
)
UPDATE deliveries AS d SET ready = (d.id = head.id)
FROM head
WHERE d.webhook_id = :webhook_id AND d.order_id = :order_id AND d.state IN ('pending',
    'delivering')
  AND NOT d.test AND d.ready IS DISTINCT FROM (d.id = head.id);

-- ============================================================ claim

-- name: share_ordering
-- Taken by every transaction that marks queue heads (`ready`) by the webhooks' `ordering`
-- (ingest, outcomes, retry, recover, replay) before it reads the webhooks; a change of a
-- webhook's `ordering` takes it exclusively (`lock_ordering`). So the change waits for
-- them to commit, and they read the new ordering after it: none marks a delivery by an
-- ordering that no longer holds (under `none`, one left not ready is never sent).
SELECT pg_advisory_xact_lock_shared(7251004);

-- name: lock_ordering
-- Waits 2 s at most: while it waits, every later `share_ordering` (every ingest) waits
-- behind it, so a transaction holding the lock in a process that stopped talking must
-- not stall them all; the change then fails as unavailable, and may be sent again.
-- Three statements without parameters, in one round trip.
SET LOCAL lock_timeout = '2s'; SELECT pg_advisory_xact_lock(7251004);
SET LOCAL lock_timeout TO DEFAULT;

-- name: serialize_claims
-- One claim at a time in the whole cluster, so slot counts, probing and rate limits
-- are exact; released at commit.
SELECT pg_advisory_xact_lock(7251001);

-- name: next_due_at
-- Per webhook one seek in deliveries_due; a probing webhook is due at its probe time.
SELECT MIN(due) FROM (
    SELECT CASE
        WHEN h.first_due IS NULL THEN NULL
        WHEN r.probing THEN GREATEST(h.first_due, COALESCE(r.probe_at, 0))
        -- A batching webhook's earliest head waits its maxWaitMs for company.
        ELSE h.first_due + COALESCE(w.batch_max_wait_ms, 0) * 1000
    END AS due
    FROM webhooks AS w
    JOIN webhook_runtime AS r ON r.webhook_id = w.id
    CROSS JOIN LATERAL (
        SELECT MIN(d.next_attempt_at) AS first_due FROM deliveries AS d
        WHERE d.webhook_id = w.id AND d.ready AND d.state = 'pending'
    ) AS h
    WHERE w.state = 'active' AND w.deleted_at IS NULL
      -- A webhook without a free slot is not due: a finished attempt wakes the workers.
      AND (SELECT COUNT(DISTINCT COALESCE(f.batch_id, f.id)) FROM deliveries AS f
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

-- ============================================================ manual control

-- name: lock_orders_of_failed
SELECT o.order_id FROM orders AS o
WHERE o.order_id IN (
    SELECT d.order_id FROM deliveries AS d
    WHERE d.webhook_id = :webhook_id AND d.state = 'failed' AND d.created_at >= :since
      AND (:until::bigint IS NULL OR d.created_at < :until))
ORDER BY o.order_id
FOR UPDATE OF o;

-- name: lock_webhook
-- A disable by hand waits for a transaction that disables the webhook meanwhile (a
-- recorded 410, a failure streak) and then reads it disabled: one transition, one
-- `webhook.disabled`. A rotation waits for one committing meanwhile and then reads its
-- secrets, which it keeps. Taken before anything else the disable or rotation writes.
SELECT id FROM webhooks WHERE id = :id FOR UPDATE;

-- name: hold_webhook
-- A delete waits for the transactions writing deliveries of the webhook (which hold
-- share_webhooks) and keeps new ones waiting until it commits: then they read it deleted.
-- The lock is its bucket's (see share_webhooks): writers to the bucket's other webhooks
-- wait for the delete too, for as long as it runs.
SELECT pg_advisory_xact_lock(7251005, hashtext(:id::text) & 63);

-- name: share_webhooks
-- Taken, in one order, before deliveries of these webhooks are written; the transaction
-- then reads which of them were deleted meanwhile (deleted_webhooks_among, a statement
-- of its own, so that it sees a delete committed while this one waited). Taken before
-- any webhook, delivery or runtime row or the webhooks' version is locked: a delete
-- holding hold_webhook goes on to lock those. (A delete locks no order row, so they may
-- be shared before order rows too: by retry, recover, replay and the outcomes.)
-- One lock per bucket of webhook ids, 64 buckets: one per webhook, a batch going to
-- thousands of them filled the shared lock table (max_locks_per_transaction, 64, per
-- connection), and every transaction needing a lock then failed "out of shared memory".
SELECT pg_advisory_xact_lock_shared(7251005, bucket)
FROM (SELECT DISTINCT hashtext(id) & 63 AS bucket FROM unnest(:ids::text[]) AS id) AS b
ORDER BY bucket;

-- ============================================================ reads

-- name: queue_gauges
SELECT webhook_id, COUNT(*) AS pending, MIN(created_at) AS oldest FROM deliveries
WHERE state = 'pending'
GROUP BY webhook_id
ORDER BY webhook_id;

-- ============================================================ the webhook cap

-- name: lock_account
-- One webhook creation per account at a time, so that the per-account cap is counted
-- and kept in one go; released at commit. (Two-key advisory locks are apart from the
-- one-key claim and migration locks.)
SELECT pg_advisory_xact_lock(7251003, hashtext(:account::text));

-- name: webhook_secrets_batch
-- A batch of `secrets reencrypt`, locked so that a concurrent change waits for it.
SELECT id, secrets, headers, tls FROM webhooks WHERE id > :after ORDER BY id LIMIT :limit
FOR UPDATE;

-- name: bump_webhooks_version
-- A new random value, not the next number: a transaction that bumped the version and was
-- rolled back leaves no number for the next change to reuse, so a webhook list cached
-- under it (read inside that transaction) is never taken for the committed one.
UPDATE meta SET value = (random() * 4611686018427387904)::bigint WHERE name = 'webhooks_version';

-- ============================================================ retention

-- name: finished_before
-- Seeks in deliveries_webhook_state per webhook and finished state (deleted webhooks too).
-- Locked until the purge commits: a retry or recover that puts one back to `pending`
-- meanwhile would otherwise see its delivery deleted. A row another transaction is
-- changing right now is left for the next purge.
SELECT id FROM deliveries
WHERE webhook_id IN (SELECT id FROM webhooks)
  AND state IN ('delivered', 'failed', 'cancelled') AND created_at < :before
LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- ============================================================ reads

-- name: list_failed_delivery_events_of_order
-- The `delivery.failed` events (`:type`) of one order, for admin keys only (a partner key
-- never lists operational events). Their rows have no order_id (they stand outside every
-- per-order queue): their order is the one their data names, which their envelope
-- carries as `orderId`.
SELECT * FROM events
WHERE type = :type AND id > :after AND test = FALSE
  AND data::jsonb ->> 'orderId' = :order_id::text
  AND (:account::text IS NULL OR account = :account)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND :scope::text[] IS NULL
ORDER BY id
LIMIT :limit;

-- name: lock_keys
-- The first-start admin key: the check that no key exists and the insert, one process at
-- a time (this mode conflicts with itself and with every insert into the table).
LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE;
