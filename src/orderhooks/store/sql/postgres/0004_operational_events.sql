-- Operational events (docs/events.md) are stored as events with no order: no order id
-- (the order of `delivery.failed` is in its data), location, channel or sequence. Their
-- deliveries have no order and no sequence either: they are outside every per-order queue.
ALTER TABLE events
    ALTER COLUMN order_id DROP NOT NULL,
    ALTER COLUMN location DROP NOT NULL,
    ALTER COLUMN channel_link DROP NOT NULL,
    ALTER COLUMN channel DROP NOT NULL,
    ALTER COLUMN sequence DROP NOT NULL;
ALTER TABLE deliveries
    ALTER COLUMN order_id DROP NOT NULL,
    ALTER COLUMN sequence DROP NOT NULL;
-- `GET /v1/events?type=...` pages through one type.
CREATE INDEX events_type ON events (type, id);
