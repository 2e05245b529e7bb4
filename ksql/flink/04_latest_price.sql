-- The latest close of each ticker, kept as a table in a compacted topic.
-- GROUP BY ticker makes a table: each new bar of a ticker replaces its row,
-- an update (a retraction of the old row, then the new row). upsert-kafka
-- writes each new row under the ticker's key; the broker's log cleaner keeps
-- only the last value of each key.
-- LAST_VALUE is the last value in arrival order: a ticker's bars arrive in
-- time order, from one partition.

INSERT INTO latest_price
SELECT
  ticker,
  LAST_VALUE(`close`) AS `close`,
  MAX(ts) AS ts
FROM bars
GROUP BY ticker;
