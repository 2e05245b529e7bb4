-- ksqlDB twin of exercise 07.1 in solutions/07_stream_joins.py (streams over minute.alerts and
-- minute.variations, from ksql/01_create_streams.sql in the minute namespace).
-- EXERCISE 07.1
SELECT
  a.ticker AS ticker,
  a.ts AS alert_ts,
  v.ts AS variation_ts
FROM minute_alerts_stream a
  INNER JOIN minute_variations_stream v
    WITHIN 3 MINUTES GRACE PERIOD 1 HOUR
    ON a.ticker = v.ticker
WHERE v.variation_ex > CAST(0.015 AS DOUBLE)
EMIT CHANGES;
