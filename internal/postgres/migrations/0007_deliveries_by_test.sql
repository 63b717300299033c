-- A webhook test's detail shows the attempts of its one delivery, found by test_id; only
-- test deliveries have one, so the index holds just those and costs real deliveries nothing.
CREATE INDEX deliveries_test ON deliveries (test_id) WHERE test_id IS NOT NULL;
