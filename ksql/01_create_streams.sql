-- 01_create_streams.sql: register the two input topics as ksqlDB streams.
-- Run once per server; IF NOT EXISTS makes a re-run a no-op (with a warning).
-- Stream names follow the topics (alerts -> alerts_stream, alice.alerts ->
-- alice_alerts_stream): a pipeline on other topics never reuses these streams.
--
-- Fixes of the original project:
-- * declare only fields the messages carry (no `time`, no numeric `id`):
--   the key is the ticker, a UTF-8 string, read as `ticker VARCHAR KEY`;
-- * TIMESTAMP='ts' makes ROWTIME the bar time (event time), so the join
--   window is measured on market time, not on when the router produced;
-- * PARTITIONS=3 on both: the join needs co-partitioned inputs (same key,
--   same partition count); a mismatch makes ksqlDB refuse the statement.
-- RETENTION_MS=-1 applies only if ksqlDB has to create a topic: it keeps
-- messages forever, like helpers/pipeline/topics.py. With the default 7 days, Kafka
-- would delete messages whose timestamps (market times) are years old.
-- Unquoted names are upper-cased by ksqlDB (TS, CLOSE); its JSON reader
-- matches them to the lower-case fields of our messages.

CREATE STREAM IF NOT EXISTS ${alerts_stream} (
  ticker VARCHAR KEY,
  ts BIGINT,
  close DOUBLE,
  volume DOUBLE,
  transactions BIGINT
) WITH (
  KAFKA_TOPIC='${alerts_topic}',
  KEY_FORMAT='KAFKA',
  VALUE_FORMAT='JSON',
  TIMESTAMP='ts',
  PARTITIONS=3,
  RETENTION_MS=-1
);

CREATE STREAM IF NOT EXISTS ${variations_stream} (
  ticker VARCHAR KEY,
  ts BIGINT,
  variation_ex DOUBLE,
  variation_in DOUBLE
) WITH (
  KAFKA_TOPIC='${variations_topic}',
  KEY_FORMAT='KAFKA',
  VALUE_FORMAT='JSON',
  TIMESTAMP='ts',
  PARTITIONS=3,
  RETENTION_MS=-1
);
