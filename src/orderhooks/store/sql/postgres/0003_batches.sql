-- Batched delivery (docs/architecture.md, "Batches"): a webhook's `batch` settings, and
-- the batch each delivery rides in. A batch is the deliveries sharing one `batch_id`:
-- set by the claim that forms it, kept while they are retried together, cleared when a
-- delivery leaves it (retry now of a failed one, recover, an earlier replayed event).
ALTER TABLE webhooks ADD COLUMN batch_max_events INTEGER;
ALTER TABLE webhooks ADD COLUMN batch_max_wait_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN batch_id TEXT COLLATE "C";
-- The members of one batch.
CREATE INDEX deliveries_batch ON deliveries (batch_id) WHERE batch_id IS NOT NULL;
-- The claim: a webhook's batches waiting for their next attempt, earliest first.
CREATE INDEX deliveries_batch_due ON deliveries (webhook_id, next_attempt_at)
    WHERE state = 'pending' AND batch_id IS NOT NULL;
