-- 05_hourly_volume.sql: a tumbling window on ksqlDB, twin of
-- ksql/flink/05_hourly_volume.sql. WINDOWSTART and WINDOWEND are epoch ms.

SELECT
  ticker,
  WINDOWSTART AS window_start,
  WINDOWEND AS window_end,
  COUNT(*) AS bars,
  SUM(volume) AS volume
FROM ${bars_stream}
  WINDOW TUMBLING (SIZE 1 HOUR)
GROUP BY ticker
EMIT CHANGES;
