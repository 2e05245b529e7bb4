-- A session window: a ticker's bars belong together until 30 minutes pass
-- without one. Its size is not fixed: it follows the data (here, trading days
-- and the gaps in the sample). window_end is the last bar's time plus the gap.

SELECT
  ticker,
  window_start,
  window_end,
  COUNT(*) AS bars
FROM TABLE(SESSION(TABLE bars PARTITION BY ticker, DESCRIPTOR(rowtime), INTERVAL '30' MINUTE))
GROUP BY ticker, window_start, window_end;
