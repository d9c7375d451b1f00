-- The workers that claimed lately, so that a claim can take its fair share of a
-- webhook's free slots instead of every one of them (docs/architecture.md, "The queue").
CREATE TABLE claimers (
    worker_id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
