-- Flink SQL twin of ksql/ buy query (05_ksql): an interval join.
-- A buy signal is an alert and a variation of the same ticker at most 5
-- minutes apart (inclusive, either order) with variation_ex strictly above
-- variation_threshold (a fraction: 0.05 is 5 %). variation_ex = high/low - 1
-- is a range, never negative: no ABS() is needed. Interval joins are
-- append-only: each matching pair is written once.

INSERT INTO buy
SELECT
  a.ticker,
  a.ts AS alert_ts,
  v.ts AS variation_ts,
  a.`close`,
  v.variation_ex,
  v.variation_in,
  TO_TIMESTAMP_LTZ(a.ts, 3) AS msg_ts
FROM alerts AS a
JOIN variations AS v
  ON a.ticker = v.ticker
  AND v.rowtime BETWEEN a.rowtime - INTERVAL '5' MINUTE
                    AND a.rowtime + INTERVAL '5' MINUTE
WHERE v.variation_ex > ${variation_threshold};
