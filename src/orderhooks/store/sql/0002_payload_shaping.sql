-- Payload shaping (docs/events.md, "Payload shaping"): whether a webhook receives the
-- customer's personal data, and the `fields` projection (a JSON array of paths; NULL
-- keeps all of `data`). Existing webhooks keep receiving everything.
ALTER TABLE webhooks ADD COLUMN personal_data TEXT NOT NULL DEFAULT 'include';
ALTER TABLE webhooks ADD COLUMN field_paths TEXT;
