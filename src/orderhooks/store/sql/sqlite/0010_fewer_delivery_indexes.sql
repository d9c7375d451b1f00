-- Every delivery passes the writer three times (ingest, claim, outcome) and each pass
-- rewrote the entry of every index whose columns or WHERE it changes
-- (docs/benchmarks.md, "Fourth round: the SQLite writer"). `deliveries_queue` only
-- served `refresh_heads`, which now seeks `deliveries_order`: an order's deliveries are
-- a few rows, never a webhook's backlog.
DROP INDEX IF EXISTS deliveries_queue;
