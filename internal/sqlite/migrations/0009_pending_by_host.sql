-- Pending deliveries by host: a claim that skips saturated hosts finds the others' due
-- deliveries without reading the skipped hosts' backlogs.
CREATE INDEX deliveries_pending_host ON deliveries (host, next_attempt_at, id) WHERE status = 'pending';
