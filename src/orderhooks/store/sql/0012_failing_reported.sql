-- The `since` of the `webhook.failing` announced for a webhook's current run of failures,
-- until a success closes it with `webhook.recovered` (docs/events.md); enabling the
-- webhook again leaves it, so that success is announced also after a disable. A webhook
-- being probed now was announced failing when probing began.
ALTER TABLE webhook_runtime ADD COLUMN failing_reported_since BIGINT;
UPDATE webhook_runtime SET failing_reported_since = failing_since WHERE probing = TRUE;
