-- 07_sessions.sql: a session window on ksqlDB (30 minutes of inactivity close
-- a session), twin of ksql/flink/07_sessions.sql. ksqlDB's WINDOWEND is the
-- last record's time; Flink's window_end adds the gap.

SELECT
  ticker,
  WINDOWSTART AS window_start,
  WINDOWEND AS window_end,
  COUNT(*) AS bars
FROM ${bars_stream}
  WINDOW SESSION (30 MINUTES)
GROUP BY ticker
EMIT CHANGES;
