-- Named queries both engines run. Each block starts with `-- name: <name>`; parameters
-- are named (`:name`), always bound, never formatted in. SQL that several queries share
-- to the letter is a `-- fragment: <name>` block, standing in each of them where a line
-- `-- include: <name>` names it. Written in PostgreSQL's dialect, kept to what SQLite
-- runs too once `store.sql` has rewritten two things for it at load: list parameters
-- (`= ANY(:ids::text[])`, `<> ALL(:ids::text[])`) become IN / NOT IN over json_each,
-- and parameter casts (`:until::bigint`, which PostgreSQL needs to type a parameter
-- only tested with IS NULL) are dropped. Booleans are written `= TRUE` and `= FALSE`:
-- SQLite reads 1 and 0 (an equality its indexes can use), PostgreSQL simplifies them to
-- the plain column. What an engine writes its own way (row locks, the claim lock, a few
-- plans) is in `<engine>/queries.sql`; a name is defined once per engine.

-- ============================================================ lifecycle

-- name: ping
SELECT 1;

-- name: applied_migrations
SELECT name FROM schema_migrations ORDER BY name;

-- name: insert_migration
INSERT INTO schema_migrations (name, applied_at) VALUES (:name, :applied_at);

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- ============================================================ webhook catalog

-- name: webhooks_version
SELECT value FROM meta WHERE name = 'webhooks_version';

-- name: live_webhooks
SELECT * FROM webhooks WHERE deleted_at IS NULL ORDER BY id;

-- name: agreed_accounts
SELECT account FROM agreements WHERE account = ANY(:accounts::text[]);

-- ============================================================ ingest

-- name: insert_order
INSERT INTO orders (order_id, account, location, channel_link, channel, status, document,
                    body_hash, courier, next_sequence, max_flow_status, created_at, updated_at)
VALUES (:order_id, :account, :location, :channel_link, :channel, :status, :document,
        :body_hash, :courier, :next_sequence, :max_flow_status, :created_at, :updated_at);

-- name: update_order
UPDATE orders SET account = :account, location = :location, channel_link = :channel_link,
    channel = :channel, status = :status, document = :document, body_hash = :body_hash,
    courier = :courier, next_sequence = :next_sequence, max_flow_status = :max_flow_status,
    created_at = :created_at, updated_at = :updated_at
WHERE order_id = :order_id;

-- name: insert_event
INSERT INTO events (id, type, order_id, account, location, channel_link, channel, sequence,
                    created_at, data, status, test, trace_parent)
VALUES (:id, :type, :order_id, :account, :location, :channel_link, :channel, :sequence,
        :created_at, :data, :status, :test, :trace_parent);

-- name: insert_delivery
INSERT INTO deliveries (id, webhook_id, event_id, event_type, order_id, account, sequence,
                        state, replay, test, ready, created_at, next_attempt_at)
VALUES (:id, :webhook_id, :event_id, :event_type, :order_id, :account, :sequence, 'pending',
        :replay, :test, :ready, :created_at, :next_attempt_at);

-- name: busy_queues
-- Through the orders' index, whatever the statistics say: `state || ''` keeps PostgreSQL
-- from reading the state test as the predicate of `deliveries_queue`, whose every entry
-- (the whole backlog) it would otherwise scan for want of statistics on `state`
-- (docs/benchmarks.md, "Fourth round: PostgreSQL").
SELECT DISTINCT webhook_id, order_id FROM deliveries
WHERE order_id = ANY(:order_ids::text[]) AND state || '' IN ('pending', 'delivering')
  AND test = FALSE;

-- ============================================================ claim

-- name: expiring_queues
-- The deliveries `expire_leases` puts back, for the (webhook, order) queues whose heads
-- are refreshed after it (the caller leaves out tests and operational events, which have
-- no order). Run before every claim: the very predicate of `expire_leases`, so that
-- SQLite reads the small `deliveries_leases` index; with `test` or `order_id` in the
-- WHERE, or a DISTINCT, it scanned every delivery through another index.
SELECT webhook_id, order_id, test FROM deliveries
WHERE state = 'delivering' AND lease_expires_at <= :now;

-- name: expire_leases
UPDATE deliveries SET state = 'pending', lease_expires_at = NULL, leased_by = NULL
WHERE state = 'delivering' AND lease_expires_at <= :now;

-- name: orderings_of
-- Read under `share_ordering`: the catalog may have been read before a change of it.
SELECT id, ordering FROM webhooks WHERE id = ANY(:ids::text[]) AND deleted_at IS NULL;

-- name: in_flight
-- One index seek per live webhook, never a scan of the backlog. Requests, not
-- deliveries: the deliveries of one batch are one request. `mine`: this worker's.
SELECT webhook_id, COUNT(DISTINCT COALESCE(batch_id, id)) AS n,
       COUNT(DISTINCT CASE WHEN leased_by = :worker_id THEN COALESCE(batch_id, id) END) AS mine
FROM deliveries
WHERE state = 'delivering' AND webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NULL)
GROUP BY webhook_id;

-- name: note_claimer
INSERT INTO claimers (worker_id, seen_at) VALUES (:worker_id, :now)
ON CONFLICT (worker_id) DO UPDATE SET seen_at = excluded.seen_at;

-- name: forget_claimers
DELETE FROM claimers WHERE seen_at < :before;

-- name: count_claimers
SELECT COUNT(*) FROM claimers WHERE seen_at >= :since;

-- name: spend_tokens
UPDATE webhook_runtime SET rate_tokens = :rate_tokens,
    rate_refilled_at = :rate_refilled_at WHERE webhook_id = :webhook_id;

-- name: runtime_of
SELECT * FROM webhook_runtime WHERE webhook_id = ANY(:webhook_ids::text[]);

-- name: due_heads
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id AND ready = TRUE AND state = 'pending' AND next_attempt_at <= :now
ORDER BY next_attempt_at
LIMIT :limit;

-- name: due_operational_heads
-- A webhook awaiting an agreement is sent its operational events only.
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id AND ready = TRUE AND state = 'pending' AND next_attempt_at <= :now
  AND event_type = ANY(:types::text[])
ORDER BY next_attempt_at
LIMIT :limit;

-- name: mark_delivering
-- `batch_id`: the batch the deliveries are sent in (null: each alone). By primary key,
-- whatever the statistics say: written `state || ''`, the guard is not the predicate of
-- the partial indexes on pending rows, which PostgreSQL would otherwise scan whole
-- (every pending delivery) and intersect with the keys (as in `busy_queues`).
-- `ready` is checked again too: on PostgreSQL a retry, recover or replay committed
-- since the claim read its heads may have put an earlier event of the order first (the
-- row is then re-read as that commit left it, and must stay behind it).
UPDATE deliveries SET state = 'delivering', lease_expires_at = :lease_expires_at,
    leased_by = :leased_by, batch_id = :batch_id
WHERE id = ANY(:ids::text[]) AND state || '' = 'pending' AND ready = TRUE
RETURNING id;

-- name: due_batches
-- Batches waiting for their next attempt (a failed attempt, an expired lease), due.
SELECT batch_id, MIN(next_attempt_at) AS due FROM deliveries
WHERE webhook_id = :webhook_id AND state = 'pending' AND batch_id IS NOT NULL
  AND next_attempt_at <= :now
GROUP BY batch_id
ORDER BY MIN(next_attempt_at), batch_id
LIMIT :limit;

-- name: batch_deliveries
-- Every delivery of a batch, whatever its state: the dashboard shows the batch body.
SELECT * FROM deliveries WHERE batch_id = :batch_id;

-- name: batch_members
SELECT * FROM deliveries WHERE batch_id = :batch_id AND state = 'pending'
ORDER BY order_id, sequence, id;

-- name: leave_batch
UPDATE deliveries SET batch_id = NULL WHERE id = ANY(:ids::text[]);

-- name: due_unbatched
-- Due heads not in a batch yet, earliest first: the claim forms new batches of them.
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id AND ready = TRUE AND state = 'pending' AND next_attempt_at <= :now
  AND batch_id IS NULL
ORDER BY next_attempt_at, id
LIMIT :limit;

-- name: due_unbatched_at
-- The same, at one point of their retry schedule only (a batch holds one point).
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id AND ready = TRUE AND state = 'pending' AND next_attempt_at <= :now
  AND batch_id IS NULL AND schedule_position = :position
ORDER BY next_attempt_at, id
LIMIT :limit;

-- name: events_by_ids
SELECT * FROM events WHERE id = ANY(:ids::text[]);

-- ============================================================ record

-- name: insert_attempt
-- A lease that expired while its attempt was still running gives the same attempt
-- number twice; the first one recorded stays.
INSERT INTO attempts (delivery_id, attempt, webhook_id, started_at, duration_ms, status_code,
                      response_body, error, batch_id, body_settings)
VALUES (:delivery_id, :attempt, :webhook_id, :started_at, :duration_ms, :status_code,
        :response_body, :error, :batch_id, :body_settings)
ON CONFLICT (delivery_id, attempt) DO NOTHING;

-- name: advance_delivery
UPDATE deliveries SET state = :state, next_attempt_at = :next_attempt_at,
    delivered_at = :delivered_at, attempt_count = :attempt_count,
    schedule_position = :schedule_position, lease_expires_at = NULL, leased_by = NULL
WHERE id = :id;

-- name: add_usage
INSERT INTO usage (account, month, event_type, delivered, replayed)
VALUES (:account, :month, :event_type, :delivered, :replayed)
ON CONFLICT (account, month, event_type) DO UPDATE
SET delivered = usage.delivered + excluded.delivered,
    replayed = usage.replayed + excluded.replayed;

-- name: update_health
UPDATE webhook_runtime SET consecutive_failures = :consecutive_failures,
    failing_since = :failing_since,
    last_success_at = :last_success_at, last_failure_at = :last_failure_at,
        probing = :probing, probe_at = :probe_at,
        failing_reported_since = :failing_reported_since
WHERE webhook_id = :webhook_id;

-- name: disable_webhook
UPDATE webhooks SET state = 'disabled', disabled_reason = :disabled_reason,
    disabled_at = :disabled_at,
    updated_at = :disabled_at
WHERE id = :id AND state <> 'disabled' AND deleted_at IS NULL;

-- ============================================================ webhooks and agreements

-- name: webhook_by_id
SELECT * FROM webhooks WHERE id = :id AND deleted_at IS NULL;

-- name: deleted_webhooks_among
SELECT id FROM webhooks WHERE id = ANY(:ids::text[]) AND deleted_at IS NOT NULL;

-- name: accounts_of_webhook
-- Deleted webhooks too: an operational event about one stays readable.
SELECT accounts FROM webhooks WHERE id = :id;

-- name: insert_webhook
INSERT INTO webhooks (id, url, description, accounts, event_types, secrets, locations,
                      channel_links, channels, new_order_trigger, status_filter,
                      courier_status_filter, payload_format, headers, timeout_seconds,
                      retry_schedule, max_concurrency, rate_limit_per_second, ordering, state,
                      disabled_reason, disabled_at, created_at, updated_at,
                      batch_max_events, batch_max_wait_ms, personal_data, field_paths, tls)
VALUES (:id, :url, :description, :accounts, :event_types, :secrets, :locations,
        :channel_links, :channels, :new_order_trigger, :status_filter,
        :courier_status_filter, :payload_format, :headers, :timeout_seconds,
        :retry_schedule, :max_concurrency, :rate_limit_per_second, :ordering, :state,
        :disabled_reason, :disabled_at, :created_at, :updated_at,
        :batch_max_events, :batch_max_wait_ms, :personal_data, :field_paths, :tls);

-- name: update_webhook
-- Everything but the secrets, which only `rotate_webhook_secrets` writes: a change that
-- read the webhook before a rotation cannot put the old secrets back. With
-- `unchanged_since`, only while no other write has touched the webhook since it was read.
UPDATE webhooks SET url = :url, description = :description, accounts = :accounts,
    event_types = :event_types, locations = :locations, channel_links = :channel_links,
    channels = :channels, new_order_trigger = :new_order_trigger,
    status_filter = :status_filter, courier_status_filter = :courier_status_filter,
    payload_format = :payload_format, headers = :headers,
    timeout_seconds = :timeout_seconds, retry_schedule = :retry_schedule,
    max_concurrency = :max_concurrency, rate_limit_per_second = :rate_limit_per_second,
    ordering = :ordering, state = :state, disabled_reason = :disabled_reason,
    disabled_at = :disabled_at, created_at = :created_at, updated_at = :updated_at,
    batch_max_events = :batch_max_events, batch_max_wait_ms = :batch_max_wait_ms,
    personal_data = :personal_data, field_paths = :field_paths,
    tls = :tls
WHERE id = :id AND (CAST(:unchanged_since AS BIGINT) IS NULL OR updated_at = :unchanged_since);

-- name: set_webhook_secrets
UPDATE webhooks SET secrets = :secrets, updated_at = :updated_at
WHERE id = :id AND deleted_at IS NULL;

-- name: all_webhook_secrets
-- Deleted webhooks too: their rows keep their secrets.
SELECT id, secrets, headers, tls FROM webhooks ORDER BY id;

-- name: reseal_webhook
-- Only the stored form changes (the values stay the same): no version bump.
UPDATE webhooks SET secrets = :secrets, headers = :headers, tls = :tls WHERE id = :id;

-- name: insert_runtime
INSERT INTO webhook_runtime (webhook_id) VALUES (:webhook_id);

-- name: delete_webhook_accounts
DELETE FROM webhook_accounts WHERE webhook_id = :webhook_id;

-- name: insert_webhook_account
INSERT INTO webhook_accounts (webhook_id, account) VALUES (:webhook_id, :account);

-- name: remember_webhook_account
INSERT INTO webhook_account_history (webhook_id, account) VALUES (:webhook_id, :account)
ON CONFLICT (webhook_id, account) DO NOTHING;

-- name: mark_webhook_deleted
UPDATE webhooks SET deleted_at = :deleted_at, updated_at = :deleted_at WHERE id = :id;

-- name: set_webhook_state
UPDATE webhooks SET state = :state, disabled_reason = :disabled_reason,
    disabled_at = :disabled_at, updated_at = :updated_at
WHERE id = :id;

-- name: set_enabled_state
-- Active, or awaiting its agreement: never for a webhook disabled or deleted meanwhile
-- (on PostgreSQL this waits for such a change, then finds the row no longer matches).
UPDATE webhooks SET state = :state, updated_at = :updated_at
WHERE id = :id AND state <> 'disabled' AND deleted_at IS NULL;

-- name: upsert_agreement
INSERT INTO agreements (account, signed_by, signed_at, currency, per_thousand, recorded_at)
VALUES (:account, :signed_by, :signed_at, :currency, :per_thousand, :recorded_at)
ON CONFLICT (account) DO UPDATE
SET signed_by = excluded.signed_by, signed_at = excluded.signed_at,
    currency = excluded.currency, per_thousand = excluded.per_thousand,
    recorded_at = excluded.recorded_at;

-- name: awaiting_webhooks_of
SELECT w.* FROM webhooks AS w JOIN webhook_accounts AS a ON a.webhook_id = w.id
WHERE a.account = :account AND w.state = 'awaiting_agreement' AND w.deleted_at IS NULL
ORDER BY w.id;

-- name: count_webhooks_of
SELECT COUNT(*) FROM webhook_accounts AS a JOIN webhooks AS w ON w.id = a.webhook_id
WHERE a.account = :account AND w.deleted_at IS NULL;

-- name: agreement_of
SELECT * FROM agreements WHERE account = :account;

-- name: ready_all
-- Delivering rows too: one that a requeued or replayed earlier event displaced as its
-- order's head comes back `pending` after a failed attempt or an expired lease, and
-- under `ordering: none` nothing would ever mark it ready again.
UPDATE deliveries SET ready = TRUE WHERE webhook_id = :webhook_id
    AND state IN ('pending', 'delivering') AND ready = FALSE;

-- name: queues_of_webhook
SELECT DISTINCT order_id FROM deliveries
WHERE webhook_id = :webhook_id AND state IN ('pending', 'delivering') AND test = FALSE;

-- name: cancel_deliveries
-- Never attempted again: no next attempt is due (`nextAttemptAt` null, as once finished).
UPDATE deliveries SET state = 'cancelled', ready = FALSE, next_attempt_at = NULL,
    lease_expires_at = NULL, leased_by = NULL
WHERE webhook_id = :webhook_id AND state IN ('pending', 'delivering');

-- name: reset_health
-- `failing_reported_since` stays: a `webhook.failing` announced before the webhook was
-- disabled is still closed by its first success, with `webhook.recovered`.
UPDATE webhook_runtime SET consecutive_failures = 0, failing_since = NULL, probing = FALSE,
    probe_at = NULL
WHERE webhook_id = :webhook_id;

-- ============================================================ manual control

-- name: delivery_by_id
SELECT * FROM deliveries WHERE id = :id;

-- name: make_due
-- A pending delivery in a batch takes its whole batch with it: retried together.
UPDATE deliveries SET next_attempt_at = :next_attempt_at
WHERE state = 'pending' AND (id = :id OR batch_id = (
    SELECT b.batch_id FROM deliveries AS b WHERE b.id = :id AND b.batch_id IS NOT NULL));

-- name: requeue_delivery
UPDATE deliveries SET state = 'pending', next_attempt_at = :next_attempt_at,
    delivered_at = NULL,
    schedule_position = 0, ready = TRUE, lease_expires_at = NULL, leased_by = NULL,
    batch_id = NULL
WHERE id = :id AND state = 'failed';

-- name: recover_failed
UPDATE deliveries SET state = 'pending', next_attempt_at = :now, delivered_at = NULL,
    schedule_position = 0, ready = TRUE, lease_expires_at = NULL, leased_by = NULL,
    batch_id = NULL
WHERE webhook_id = :webhook_id AND state = 'failed' AND created_at >= :since
  AND (:until::bigint IS NULL OR created_at < :until)
RETURNING order_id, test;

-- name: probe_now
-- A webhook being probed is probed now, not at its schedule's time: a delivery to it
-- was made due by hand (retry now, recover, a test event), or its URL changed
-- (docs/guarantees.md).
UPDATE webhook_runtime SET probe_at = :now
WHERE webhook_id = :webhook_id AND probing = TRUE AND probe_at > :now;

-- name: replay_candidates
SELECT * FROM events
WHERE (created_at, id) > (:after_created_at::bigint, :after_id::text)
    AND (:until::bigint IS NULL OR created_at < :until)
  AND test = FALSE
  AND (:accounts::text[] IS NULL OR account = ANY(:accounts::text[]))
  AND (:types::text[] IS NULL OR type = ANY(:types::text[]))
ORDER BY created_at, id
LIMIT :limit;

-- name: order_news_before
-- The order.new events of these orders created before a replay's range.
SELECT * FROM events
WHERE order_id = ANY(:order_ids::text[]) AND type = 'order.new' AND test = FALSE
  AND created_at < :before;

-- ============================================================ reads

-- name: order_by_id
SELECT * FROM orders WHERE order_id = :order_id;

-- name: event_by_id
SELECT * FROM events WHERE id = :id;

-- name: attempts_of
SELECT * FROM attempts WHERE delivery_id = :delivery_id ORDER BY attempt;

-- name: runtime_of_live_webhook
SELECT r.* FROM webhook_runtime AS r JOIN webhooks AS w ON w.id = r.webhook_id
WHERE r.webhook_id = :webhook_id AND w.deleted_at IS NULL;

-- name: delivery_counts
SELECT state, COUNT(*) AS n FROM deliveries WHERE webhook_id = :webhook_id GROUP BY state;

-- name: recent_durations
-- The webhook's last attempts; `webhook_stats` takes each batch request among them once.
SELECT duration_ms, batch_id, started_at FROM attempts WHERE webhook_id = :webhook_id
ORDER BY started_at DESC LIMIT :limit;

-- name: events_of_order
SELECT * FROM events WHERE order_id = :order_id AND test = FALSE ORDER BY sequence, id;

-- name: list_events
SELECT * FROM events
WHERE id > :after AND test = FALSE
  AND (:order_id::text IS NULL OR order_id = :order_id)
  AND (:type::text IS NULL OR type = :type)
  AND (:account::text IS NULL OR account = :account)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND (:scope::text[] IS NULL OR account = ANY(:scope::text[]))
  -- Operational events (no sequence) only when their type is asked for, and never to a
  -- partner key, which reads them through their deliveries.
  AND (sequence IS NOT NULL OR (:type::text IS NOT NULL AND :scope::text[] IS NULL))
ORDER BY id
LIMIT :limit;

-- name: list_events_of_order
SELECT * FROM events
WHERE order_id = :order_id::text AND id > :after AND test = FALSE
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

-- name: webhooks_in_trouble
-- Live webhooks the caller may see (all their accounts in scope) that may be in trouble:
-- disabled for failing or for a gone endpoint, awaiting an agreement, or active with a
-- latest attempt that failed. The dashboard's overview words and ranks them
-- (web/dashboard/health.py); it asks here so that a webhook beyond its first page of
-- webhooks is not missed. Those that look worst first (disabled for cause, then active
-- ones by their run of failures, then awaiting), then the oldest.
SELECT w.* FROM webhooks AS w LEFT JOIN webhook_runtime AS r ON r.webhook_id = w.id
WHERE w.deleted_at IS NULL
  AND (:scope::text[] IS NULL OR NOT EXISTS (
      SELECT 1 FROM webhook_accounts AS a
      WHERE a.webhook_id = w.id AND a.account <> ALL(:scope::text[])))
  AND ((w.state = 'disabled' AND w.disabled_reason IN ('failing', 'gone'))
       OR w.state = 'awaiting_agreement'
       OR (w.state = 'active' AND r.last_failure_at IS NOT NULL
           AND (r.last_success_at IS NULL OR r.last_failure_at > r.last_success_at)))
ORDER BY CASE w.state WHEN 'disabled' THEN 0 WHEN 'active' THEN 1 ELSE 2 END,
    COALESCE(r.consecutive_failures, 0) DESC, w.id
LIMIT :limit;

-- name: any_failed_of
-- Whether a failed delivery of these accounts exists: the dashboard's overview asks it
-- before the costly failure list. It looks only at the webhooks that can carry them
-- (installed on one of the accounts, or on every account, now or before), each through
-- deliveries_webhook_state.
SELECT 1 FROM deliveries
WHERE webhook_id IN (
    SELECT a.webhook_id FROM webhook_account_history AS a
    WHERE a.account = ANY(:accounts::text[]) OR a.account = '*')
  AND state = 'failed' AND account = ANY(:accounts::text[])
LIMIT 1;

-- name: any_failed_anywhere
-- Whether any failed delivery exists, to a live or a deleted webhook (its failed
-- deliveries stay): the admin's overview asks it, one seek in deliveries_webhook_state
-- per webhook.
SELECT 1 FROM deliveries
WHERE webhook_id IN (SELECT id FROM webhooks) AND state = 'failed'
LIMIT 1;

-- name: pending_of_accounts
-- The pending deliveries a partner of these accounts may list (list_deliveries' rule:
-- an operational event's only to a webhook all of whose accounts are among them), how
-- many and the oldest: the dashboard's queue depth for a partner. Pending rows only,
-- through an index: deliveries_webhook_state per webhook that can carry them (now or
-- before: webhook_account_history) on SQLite, the pending-only deliveries_due on
-- PostgreSQL.
SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM deliveries
WHERE webhook_id IN (
    SELECT a.webhook_id FROM webhook_account_history AS a
    WHERE a.account = ANY(:accounts::text[]) OR a.account = '*')
  AND state = 'pending' AND account = ANY(:accounts::text[])
  AND (sequence IS NOT NULL OR NOT EXISTS (
      SELECT 1 FROM webhook_accounts AS wa
      WHERE wa.webhook_id = deliveries.webhook_id AND wa.account <> ALL(:accounts::text[])));

-- fragment: delivery_list_page
-- What every delivery list does after the filters it seeks by: the other filters, then
-- a page, newest first. A partner key lists an operational event's delivery only when
-- its accounts cover the receiving webhook's (and so the webhook the event is about).
  AND (:event_type::text IS NULL OR event_type = :event_type)
  AND (:since::bigint IS NULL OR created_at >= :since)
  AND (:until::bigint IS NULL OR created_at < :until)
  AND (:scope::text[] IS NULL OR account = ANY(:scope::text[]))
  AND (:scope::text[] IS NULL OR sequence IS NOT NULL OR NOT EXISTS (
      SELECT 1 FROM webhook_accounts AS a
      WHERE a.webhook_id = deliveries.webhook_id AND a.account <> ALL(:scope::text[])))
ORDER BY id DESC
LIMIT :limit

-- name: list_deliveries
SELECT * FROM deliveries
WHERE id < :before
  AND (:webhook_id::text IS NULL OR webhook_id = :webhook_id)
  AND (:state::text IS NULL OR state = :state)
  AND (:order_id::text IS NULL OR order_id = :order_id)
  -- include: delivery_list_page

-- name: list_deliveries_of_webhook
-- A query of its own so that the webhook is a seek in deliveries_webhook (webhook_id, id),
-- which the optional filter of list_deliveries is not.
SELECT * FROM deliveries
WHERE webhook_id = :webhook_id::text AND id < :before
  AND (:state::text IS NULL OR state = :state)
  AND (:order_id::text IS NULL OR order_id = :order_id)
  -- include: delivery_list_page

-- name: list_deliveries_of_order
-- Likewise, a seek in deliveries_order (order_id, id).
SELECT * FROM deliveries
WHERE order_id = :order_id::text AND id < :before
  AND (:webhook_id::text IS NULL OR webhook_id = :webhook_id)
  AND (:state::text IS NULL OR state = :state)
  -- include: delivery_list_page

-- name: usage_rows
SELECT * FROM usage
WHERE (:accounts::text[] IS NULL OR account = ANY(:accounts::text[]))
  AND month = ANY(:months::text[])
ORDER BY account, month, event_type;

-- name: outcome_series
-- Attempts started in [:since, :until) in buckets of :bucket_us microseconds, with
-- nearest-rank percentiles (rank ceil(p * n)) picked from window ranks, so no row leaves
-- the engine. Of one webhook, or (:webhook_id null) of all, deleted ones too: either way
-- one seek in attempts_webhook per webhook. Outcomes count each delivery's attempt; the
-- percentiles count each request once (a batch's attempts share its id and start).
WITH picked AS (
    SELECT a.started_at / :bucket_us AS bucket, a.duration_ms AS duration,
        CASE WHEN a.error IS NULL AND a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END
            AS ok,
        a.webhook_id, a.batch_id, a.started_at
    FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE a.webhook_id IN (
        SELECT id FROM webhooks WHERE :webhook_id::text IS NULL OR id = :webhook_id)
      AND a.started_at >= :since AND a.started_at < :until
      AND (:scope::text[] IS NULL OR d.account = ANY(:scope::text[]))
      -- An operational event's delivery counts for a partner only to a webhook all of
      -- whose accounts are its own, as list_deliveries lists it.
      AND (:scope::text[] IS NULL OR d.sequence IS NOT NULL OR NOT EXISTS (
          SELECT 1 FROM webhook_accounts AS wa
          WHERE wa.webhook_id = d.webhook_id AND wa.account <> ALL(:scope::text[])))
), requests AS (
    SELECT bucket, duration FROM picked WHERE batch_id IS NULL
    UNION ALL
    SELECT bucket, MIN(duration) FROM picked WHERE batch_id IS NOT NULL
    GROUP BY bucket, webhook_id, batch_id, started_at
), ranked AS (
    SELECT bucket, duration,
        ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY duration) AS position,
        COUNT(*) OVER (PARTITION BY bucket) AS n
    FROM requests
), latency AS (
    SELECT bucket,
        MAX(CASE WHEN position = (50 * n + 99) / 100 THEN duration END) AS p50,
        MAX(CASE WHEN position = (95 * n + 99) / 100 THEN duration END) AS p95,
        MAX(CASE WHEN position = (99 * n + 99) / 100 THEN duration END) AS p99
    FROM ranked
    GROUP BY bucket
)
SELECT o.bucket, o.succeeded, o.failed, latency.p50, latency.p95, latency.p99
FROM (SELECT bucket, SUM(ok) AS succeeded, COUNT(*) - SUM(ok) AS failed
      FROM picked GROUP BY bucket) AS o
JOIN latency ON latency.bucket = o.bucket
ORDER BY o.bucket;

-- ============================================================ retention

-- name: orphan_events_before
SELECT e.id FROM events AS e
WHERE e.created_at < :before
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = e.id)
LIMIT :limit;

-- name: delete_attempts_of
DELETE FROM attempts WHERE delivery_id = ANY(:delivery_ids::text[]);

-- name: delete_deliveries
DELETE FROM deliveries WHERE id = ANY(:ids::text[]);

-- name: delete_events
DELETE FROM events WHERE id = ANY(:ids::text[]);

-- name: purge_consumed_messages
-- Seeks in consumed_messages_consumed_at.
DELETE FROM consumed_messages WHERE (source_id, digest) IN (
    SELECT source_id, digest FROM consumed_messages WHERE consumed_at < :before LIMIT :limit);

-- ============================================================ keys and audit

-- name: insert_key
INSERT INTO api_keys (id, role, accounts, name, key_hash, created_at)
VALUES (:id, :role, :accounts, :name, :key_hash, :created_at);

-- name: key_by_hash
SELECT * FROM api_keys WHERE key_hash = :key_hash;

-- name: key_by_id
SELECT * FROM api_keys WHERE id = :id;

-- name: list_keys
SELECT * FROM api_keys WHERE id > :after ORDER BY id LIMIT :limit;

-- name: revoke_key
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, :revoked_at) WHERE id = :id;

-- name: count_keys
SELECT COUNT(*) FROM api_keys;

-- name: insert_audit
INSERT INTO audit (id, at, actor, action, target_type, target_id, details)
VALUES (:id, :at, :actor, :action, :target_type, :target_id, :details);

-- name: list_audit
SELECT * FROM audit WHERE id < :before ORDER BY id DESC LIMIT :limit;

-- Portal links (store/shared/portal.py)

-- name: insert_portal_link
INSERT INTO portal_links (id, token_hash, accounts, created_by, created_at, expires_at)
VALUES (:id, :token_hash, :accounts, :created_by, :created_at, :expires_at);

-- name: portal_link_by_token
SELECT * FROM portal_links WHERE token_hash = :token_hash;

-- name: portal_link_by_id
SELECT * FROM portal_links WHERE id = :id;

-- name: consume_portal_link
-- One statement, so that of two concurrent opens exactly one changes the row.
UPDATE portal_links SET used_at = :now
WHERE token_hash = :token_hash AND used_at IS NULL AND expires_at > :now
RETURNING *;

-- name: expire_portal_link
UPDATE portal_links SET expires_at = CASE WHEN expires_at < :at THEN expires_at ELSE :at END
WHERE id = :id;

-- ============================================================ erasure

-- name: erase_order
UPDATE orders SET document = :document, courier = :courier WHERE order_id = :order_id;

-- name: events_to_erase
-- Every stored event of the order, test events included.
SELECT id, type, data FROM events WHERE order_id = :order_id;

-- name: erase_event
UPDATE events SET data = :data WHERE id = :id;
