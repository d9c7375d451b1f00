-- The batch an attempt was made in (NULL: its delivery went alone). A batch request
-- records one attempt on each of its deliveries; the latency figures take each request
-- once, by this id and the attempt's start (docs/api.md, "Stats").
ALTER TABLE attempts ADD COLUMN batch_id TEXT;
