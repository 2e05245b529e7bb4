-- 02_buy_signals.sql: the buy rule as a persistent stream-stream join.
-- An alert and a big variation of the same ticker whose event times are at
-- most 5 minutes apart, in either order, become one `buy` message.
-- Run it with auto.offset.reset=earliest (helpers.pipeline.ksqldb passes it) so the
-- query also reads what the router produced before it started, and with
-- processing.guarantee=exactly_once_v2, so it reads committed messages only
-- (the router's exactly-once mode writes in transactions).
--
-- Fixes of the original project:
-- * the threshold is a fraction, like the variations (0.05 is 5 %);
--   the original compared percent values with 0.02, i.e. 0.02 %;
-- * it is cast to DOUBLE: a literal with a decimal point is a DECIMAL;
-- * the join is on the key (ticker), not on a per-bar id;
-- * no ABS(): variation_ex = high/low - 1 is a range, never negative;
-- * the output carries every field of the `buy` schema, not just an id.
--
-- Semantics (ksqlDB docs and functional tests):
-- * WITHIN 5 MINUTES is inclusive at both ends: |a.ts - v.ts| <= 5 min;
--   ROWTIME is `ts` on both inputs (TIMESTAMP='ts' in 01_create_streams);
-- * GRACE PERIOD (ksqlDB 0.23+) bounds how late a record may arrive and
--   still join; without it ksqlDB assumes 24 hours. One hour covers a
--   replayed history whose two topics are read at different speeds;
-- * TIMESTAMP names the column that becomes each buy message's Kafka
--   timestamp: alert_ts, as in the Flink twin (without it, ksqlDB would use
--   the later of the two event times). Backticks inside the quotes keep
--   the lower-case name; RETENTION_MS=-1 keeps these old-dated messages;
-- * the key is the ticker (KAFKA format, same as the inputs); the value
--   repeats it with AS_VALUE, because our `buy` schema has a ticker field.
--   The key column is named ticker_key, as a column name is used once;
-- * backquoted lower-case aliases keep the JSON field names lower case
--   (unquoted names would be written as ALERT_TS, CLOSE, ...).
-- Re-create with another threshold: run 00_drop.sql first.

CREATE STREAM ${buy_stream} WITH (
  KAFKA_TOPIC='${buy_topic}',
  KEY_FORMAT='KAFKA',
  VALUE_FORMAT='JSON',
  TIMESTAMP='`alert_ts`',
  PARTITIONS=3,
  RETENTION_MS=-1
) AS
SELECT
  a.ticker AS ticker_key,
  AS_VALUE(a.ticker) AS `ticker`,
  a.ts AS `alert_ts`,
  v.ts AS `variation_ts`,
  a.close AS `close`,
  v.variation_ex AS `variation_ex`,
  v.variation_in AS `variation_in`
FROM ${alerts_stream} a
  INNER JOIN ${variations_stream} v
    WITHIN 5 MINUTES GRACE PERIOD 1 HOUR
    ON a.ticker = v.ticker
WHERE v.variation_ex > CAST(${variation_threshold} AS DOUBLE)
EMIT CHANGES;
