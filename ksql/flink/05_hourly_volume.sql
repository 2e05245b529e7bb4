-- A tumbling window: each ticker's bars cut into whole hours of event time,
-- one row per ticker and hour once the watermark has passed the hour's end.
-- window_start and window_end bound each hour [start, end); the grouping
-- columns name the window, as a GROUP BY names a table's key.

SELECT
  ticker,
  window_start,
  window_end,
  COUNT(*) AS bars,
  SUM(volume) AS volume
FROM TABLE(TUMBLE(TABLE bars, DESCRIPTOR(rowtime), INTERVAL '1' HOUR))
GROUP BY ticker, window_start, window_end;
