-- SQLite's 0010 drops an index its writer no longer needs; PostgreSQL keeps its own
-- (its refresh_heads plans on deliveries_queue). Present so that both engines number
-- their migrations alike.
SELECT 1;
