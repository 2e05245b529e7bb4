-- A hopping window: 15 minutes long, starting every 5 minutes, so each bar
-- counts in three overlapping windows. It is how a moving sum is written:
-- the volume of the last 15 minutes, updated every 5. Here for TSLA only.

SELECT
  ticker,
  window_start,
  window_end,
  SUM(volume) AS volume
FROM TABLE(HOP(TABLE bars, DESCRIPTOR(rowtime), INTERVAL '5' MINUTE, INTERVAL '15' MINUTE))
WHERE ticker = 'TSLA'
GROUP BY ticker, window_start, window_end;
