-- Expired deliveries are found through their events (events_created): a delivery expires
-- once every delivery of its event finished before the retention cut-off. The index on
-- finished deliveries is no longer read, and its upkeep was on the path of every delivery.
DROP INDEX IF EXISTS deliveries_done;
