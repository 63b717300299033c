-- A webhook's health: its current run of failed attempts (failing_since, consecutive_failures;
-- a success ends it and sets last_success_at), what was last reported of it (health: '',
-- 'failing' or 'disabled', at health_at), and why ubihooks disabled it (disabled_reason,
-- disabled_at; NULL when it did not). Deliveries of a webhook that ubihooks disabled are
-- parked: an index of their own keeps them found without reading the webhook's history.
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
ALTER TABLE webhooks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN last_success_at INTEGER;
ALTER TABLE webhooks ADD COLUMN health TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN health_at INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;
CREATE INDEX deliveries_parked ON deliveries (webhook_id, created_at, id) WHERE status = 'parked';
