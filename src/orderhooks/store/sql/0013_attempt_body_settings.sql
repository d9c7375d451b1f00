-- The settings that shaped the body an attempt sent (payload format, personalData,
-- fields; JSON text): the dashboard builds that exact body again from the stored event,
-- also after the webhook's settings changed (docs/dashboard.md). NULL on attempts made
-- before this column existed.
ALTER TABLE attempts ADD COLUMN body_settings TEXT;
