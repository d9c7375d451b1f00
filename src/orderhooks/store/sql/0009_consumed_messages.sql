-- The broker messages already ingested, by source and SHA-256 of the body, so that a
-- message the broker delivers again (after a crash between commit and acknowledgement)
-- creates nothing twice; purged with the retention (docs/operations.md).
CREATE TABLE consumed_messages (
    source_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    consumed_at BIGINT NOT NULL,
    PRIMARY KEY (source_id, digest)
);
CREATE INDEX consumed_messages_consumed_at ON consumed_messages (consumed_at);
