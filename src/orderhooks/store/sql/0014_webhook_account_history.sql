-- Every account a webhook has been installed on, kept when a PATCH takes the account
-- away: a partner's deliveries stay on the webhooks that carried its orders, and the
-- dashboard's overview finds them through here as GET /v1/deliveries lists them
-- (docs/dashboard.md). Filled from the accounts webhooks have now: an account taken
-- away before this migration is not known (reading it from the deliveries would scan
-- them all while the migration holds its locks).
CREATE TABLE webhook_account_history (
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    account TEXT NOT NULL,
    PRIMARY KEY (webhook_id, account)
);
CREATE INDEX webhook_account_history_account ON webhook_account_history (account);
INSERT INTO webhook_account_history (webhook_id, account)
SELECT webhook_id, account FROM webhook_accounts;
