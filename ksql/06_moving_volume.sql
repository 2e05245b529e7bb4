-- 06_moving_volume.sql: a hopping window on ksqlDB (15 minutes, every 5),
-- twin of ksql/flink/06_moving_volume.sql.

SELECT
  ticker,
  WINDOWSTART AS window_start,
  WINDOWEND AS window_end,
  SUM(volume) AS volume
FROM ${bars_stream}
  WINDOW HOPPING (SIZE 15 MINUTES, ADVANCE BY 5 MINUTES)
WHERE ticker = 'TSLA'
GROUP BY ticker
EMIT CHANGES;
