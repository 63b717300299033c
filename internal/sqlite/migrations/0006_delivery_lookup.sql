-- Delivery lookups that do not scan: a webhook's history is paged newest first by
-- (created_at, id), so its index gains the id that breaks ties and replaces the one on
-- (webhook_id, created_at) (which also served the cascade from webhooks: the new one does
-- too). Lookups by event, and by request (whose event ids derive from its id), use the
-- unique key on (event_id, webhook_id).
CREATE INDEX deliveries_webhook_created ON deliveries (webhook_id, created_at, id);
DROP INDEX IF EXISTS deliveries_webhook;
