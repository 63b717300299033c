-- Expired history is removed event by event (an event with all its deliveries, when every
-- one of them finished before the retention cut-off), through events_created; the index on
-- finished deliveries is no longer read, and its upkeep was on the path of every delivery.
DROP INDEX IF EXISTS deliveries_done;
