-- The W3C traceparent of the ingest span that created each event (NULL when tracing was
-- off): a delivery attempt's span links to it, across processes and restarts.
ALTER TABLE events ADD COLUMN trace_parent TEXT;
