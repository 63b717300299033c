-- A delivery's first attempt is kept in its own row (first_*, NULL until that attempt is
-- recorded) rather than in attempts: most deliveries make one attempt, and recording it
-- is then the update of the delivery alone, not also a row and two index entries in
-- attempts. Later attempts, and attempts recorded after their lease was lost, go to
-- attempts as before; a delivery's attempts are both, in the order they started.
ALTER TABLE deliveries ADD COLUMN first_started_at BIGINT;
ALTER TABLE deliveries ADD COLUMN first_duration_us BIGINT;
ALTER TABLE deliveries ADD COLUMN first_status_code INTEGER;
ALTER TABLE deliveries ADD COLUMN first_error_class TEXT;
ALTER TABLE deliveries ADD COLUMN first_error TEXT;
ALTER TABLE deliveries ADD COLUMN first_response_body TEXT;
