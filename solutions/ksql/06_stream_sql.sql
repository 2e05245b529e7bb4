-- ksqlDB twins of solutions/06_stream_sql.py (the stream over minute.pricelist is
-- minute_pricelist_stream, from ksql/03_lesson_streams.sql).
-- EXERCISE 06.1
SELECT
  ticker,
  WINDOWSTART AS window_start,
  EARLIEST_BY_OFFSET(open) AS `open`,
  MAX(high) AS high,
  MIN(low) AS low,
  LATEST_BY_OFFSET(close) AS `close`,
  SUM(volume) AS volume
FROM minute_pricelist_stream
  WINDOW TUMBLING (SIZE 5 MINUTES)
GROUP BY ticker
EMIT CHANGES;
-- EXERCISE 06.2
SELECT
  ticker,
  WINDOWSTART AS window_start,
  COUNT(*) AS bars,
  MIN(low) AS low,
  MAX(high) AS high
FROM minute_pricelist_stream
  WINDOW TUMBLING (SIZE 1 DAY)
GROUP BY ticker
EMIT CHANGES;
