-- attempts counts every attempt of a delivery; retry_base is how many of them were made
-- before its last redeliver, so that the retry schedule starts over for a redelivery
-- while attempts stays the length of its history.
ALTER TABLE deliveries ADD COLUMN retry_base INTEGER NOT NULL DEFAULT 0;
