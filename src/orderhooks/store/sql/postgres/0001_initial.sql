-- The whole schema of orderhooks on PostgreSQL.
-- Times are BIGINT microseconds since the Unix epoch (UTC); JSON documents are TEXT
-- (not JSONB) so that unknown fields and key order pass through unchanged. Ids use
-- COLLATE "C": they sort by creation in byte order, which keyset pages rely on.

-- Counters shared by every process: `webhooks_version` changes with every change of a
-- webhook's configuration or state, so cached webhook lists know when to reload.
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (name, value) VALUES ('webhooks_version', 0);

CREATE TABLE orders (
    order_id TEXT COLLATE "C" PRIMARY KEY,
    account TEXT NOT NULL,
    location TEXT NOT NULL,
    channel_link TEXT NOT NULL,
    channel INTEGER NOT NULL,
    status INTEGER NOT NULL,
    document TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    courier TEXT,
    next_sequence INTEGER NOT NULL,
    max_flow_status INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE events (
    id TEXT COLLATE "C" PRIMARY KEY,
    type TEXT NOT NULL,
    order_id TEXT COLLATE "C" NOT NULL,
    account TEXT NOT NULL,
    location TEXT NOT NULL,
    channel_link TEXT NOT NULL,
    channel INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    data TEXT NOT NULL,
    status INTEGER,
    test BOOLEAN NOT NULL
);
CREATE INDEX events_order ON events (order_id, sequence);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE webhooks (
    id TEXT COLLATE "C" PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    accounts TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secrets TEXT NOT NULL,
    locations TEXT NOT NULL,
    channel_links TEXT NOT NULL,
    channels TEXT NOT NULL,
    new_order_trigger INTEGER,
    status_filter TEXT NOT NULL,
    courier_status_filter TEXT NOT NULL,
    payload_format TEXT NOT NULL,
    headers TEXT NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    retry_schedule TEXT,
    max_concurrency INTEGER NOT NULL,
    rate_limit_per_second DOUBLE PRECISION,
    ordering TEXT NOT NULL,
    state TEXT NOT NULL,
    disabled_reason TEXT,
    disabled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);

-- One row per account a webhook is installed on ('*' for all), for scoped lookups.
CREATE TABLE webhook_accounts (
    webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks (id),
    account TEXT NOT NULL,
    PRIMARY KEY (webhook_id, account)
);
CREATE INDEX webhook_accounts_account ON webhook_accounts (account);

-- What changes with every attempt (health) and claim (rate limit tokens), apart from the
-- configuration so that the busy rows stay small.
CREATE TABLE webhook_runtime (
    webhook_id TEXT COLLATE "C" PRIMARY KEY REFERENCES webhooks (id),
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since BIGINT,
    last_success_at BIGINT,
    last_failure_at BIGINT,
    probing BOOLEAN NOT NULL DEFAULT FALSE,
    probe_at BIGINT,
    rate_tokens DOUBLE PRECISION,
    rate_refilled_at BIGINT
);

-- `ready` marks the head of a (webhook, order) queue: no lower-sequence delivery of the
-- same order and webhook is pending or delivering (always true for `ordering: none` and
-- for tests). Every transaction that changes a queue keeps it right, so the claim
-- reads a flag instead of searching for heads among a million waiting deliveries.
CREATE TABLE deliveries (
    id TEXT COLLATE "C" PRIMARY KEY,
    webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks (id),
    event_id TEXT COLLATE "C" NOT NULL REFERENCES events (id),
    event_type TEXT NOT NULL,
    order_id TEXT COLLATE "C" NOT NULL,
    account TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    state TEXT NOT NULL,
    replay BOOLEAN NOT NULL,
    test BOOLEAN NOT NULL,
    ready BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT,
    delivered_at BIGINT,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    schedule_position INTEGER NOT NULL DEFAULT 0,
    lease_expires_at BIGINT,
    leased_by TEXT
);
-- The claim: a webhook's due heads, earliest first.
CREATE INDEX deliveries_due ON deliveries (webhook_id, ready, next_attempt_at)
    WHERE state = 'pending';
-- The (webhook, order) queues, for keeping `ready` right.
CREATE INDEX deliveries_queue ON deliveries (webhook_id, order_id, sequence)
    WHERE state IN ('pending', 'delivering');
-- In-flight counts per webhook and expired leases.
CREATE INDEX deliveries_leases ON deliveries (webhook_id, lease_expires_at)
    WHERE state = 'delivering';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
-- Counts by state, recovery and retention: per webhook, per state, by creation time.
CREATE INDEX deliveries_webhook_state ON deliveries (webhook_id, state, created_at);
CREATE INDEX deliveries_order ON deliveries (order_id, id);
-- Deleting an event checks that no delivery references it (retention).
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE attempts (
    delivery_id TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id),
    attempt INTEGER NOT NULL,
    webhook_id TEXT COLLATE "C" NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,
    response_body TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
CREATE INDEX attempts_webhook ON attempts (webhook_id, started_at);

CREATE TABLE usage (
    account TEXT NOT NULL,
    month TEXT NOT NULL,
    event_type TEXT NOT NULL,
    delivered BIGINT NOT NULL,
    replayed BIGINT NOT NULL,
    PRIMARY KEY (account, month, event_type)
);

CREATE TABLE agreements (
    account TEXT PRIMARY KEY,
    signed_by TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    currency TEXT NOT NULL,
    per_thousand TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    role TEXT NOT NULL,
    accounts TEXT NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE audit (
    id TEXT COLLATE "C" PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    details TEXT NOT NULL
);
