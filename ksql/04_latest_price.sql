-- 04_latest_price.sql: the latest close of each ticker as a ksqlDB TABLE.
-- LATEST_BY_OFFSET is the value of the newest message of each key; the table's
-- changelog goes to a topic ksqlDB creates with cleanup.policy=compact.

CREATE TABLE IF NOT EXISTS ${latest_table} WITH (
  KAFKA_TOPIC='${latest_topic}',
  KEY_FORMAT='KAFKA',
  VALUE_FORMAT='JSON',
  PARTITIONS=3
) AS
SELECT
  ticker,
  LATEST_BY_OFFSET(close) AS `close`,
  MAX(ts) AS `ts`
FROM ${bars_stream}
GROUP BY ticker
EMIT CHANGES;
