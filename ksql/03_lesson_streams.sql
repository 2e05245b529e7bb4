-- 03_lesson_streams.sql: the ksqlDB twins of ksql/flink/03_lesson_tables.sql,
-- over the minute pipeline (minute.pricelist, minute.alerts, minute.variations).
-- ksqlDB names are global on its server: they follow the topics, as in
-- 01_create_streams.sql (minute.pricelist -> minute_pricelist_stream).
-- TIMESTAMP='ts': event time is the bar time. A query reads from the start with
-- auto.offset.reset=earliest (the workbook passes it); ksqlDB has no bounded
-- read: every push query follows its stream, and the workbook stops it.
-- The latest-price table is made by 04_latest_price.sql (a CREATE TABLE AS
-- SELECT), whose changelog topic ksqlDB creates compacted.

CREATE STREAM IF NOT EXISTS ${bars_stream} (
  ticker VARCHAR KEY,
  ts BIGINT,
  open DOUBLE,
  high DOUBLE,
  low DOUBLE,
  close DOUBLE,
  volume DOUBLE
) WITH (
  KAFKA_TOPIC='${pricelist_topic}',
  KEY_FORMAT='KAFKA',
  VALUE_FORMAT='JSON',
  TIMESTAMP='ts',
  PARTITIONS=3,
  RETENTION_MS=-1
);
