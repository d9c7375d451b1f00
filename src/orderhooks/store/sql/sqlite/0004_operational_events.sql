-- Operational events (docs/events.md) are stored as events with no order: no order id
-- (the order of `delivery.failed` is in its data), location, channel or sequence. Their
-- deliveries have no order and no sequence either: they are outside every per-order queue.
--
-- SQLite cannot drop a NOT NULL constraint with ALTER TABLE, and rebuilding `events` and
-- `deliveries` (which `attempts` references) would copy every row. Removing a NOT NULL
-- constraint does not change what is on disk, so the table definitions are edited in
-- place, as SQLite documents for such changes: `writable_schema = RESET` reloads the
-- schema of this connection, and the CREATE INDEX that follows changes the schema cookie
-- so that every other connection reloads it too.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(replace(replace(replace(replace(sql,
    'order_id TEXT NOT NULL', 'order_id TEXT'),
    'location TEXT NOT NULL', 'location TEXT'),
    'channel_link TEXT NOT NULL', 'channel_link TEXT'),
    'channel INTEGER NOT NULL', 'channel INTEGER'),
    'sequence INTEGER NOT NULL', 'sequence INTEGER')
WHERE type = 'table' AND name = 'events';
UPDATE sqlite_schema
SET sql = replace(replace(sql,
    'order_id TEXT NOT NULL', 'order_id TEXT'),
    'sequence INTEGER NOT NULL', 'sequence INTEGER')
WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = RESET;
-- `GET /v1/events?type=...` pages through one type.
CREATE INDEX events_type ON events (type, id);
