-- Flink SQL tables of notebooks 06 and 07, over the minute pipeline (the
-- `minute.` namespace: minute.pricelist, minute.alerts, minute.variations).
-- Same fields as the messages (helpers/core/schemas.py); event time is the bar
-- time `ts`, with a watermark one minute behind the newest bar seen.
-- bars:        the bars as they are now: a query reads to the end and stops
--              ('scan.bounded.mode' = 'latest-offset');
-- bars_live:   the same topic, followed as it grows (a query runs until stopped);
-- alerts, variations: the router's output for the minute bars, read to the end,
--              are declared by the buy join's own file (01_create_tables.sql);
-- latest_price: a table kept in a compacted topic (upsert-kafka): one value per
--              ticker, each new value replacing the last under the same key.

CREATE TABLE IF NOT EXISTS bars (
  ticker STRING,
  ts BIGINT,
  `open` DOUBLE,
  high DOUBLE,
  low DOUBLE,
  `close` DOUBLE,
  volume DOUBLE,
  rowtime AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '1' MINUTE
) WITH (
  'connector' = 'kafka',
  'topic' = '${pricelist_topic}',
  'properties.bootstrap.servers' = '${bootstrap_servers}',
  ${kafka_login}
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'key.format' = 'raw',
  'key.fields' = 'ticker',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

CREATE TABLE IF NOT EXISTS bars_live
WITH ('scan.bounded.mode' = 'unbounded')
LIKE bars (INCLUDING ALL OVERWRITING OPTIONS);

CREATE TABLE IF NOT EXISTS latest_price (
  ticker STRING,
  `close` DOUBLE,
  ts BIGINT,
  PRIMARY KEY (ticker) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${latest_topic}',
  'properties.bootstrap.servers' = '${bootstrap_servers}',
  ${kafka_login}
  'key.format' = 'raw',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);
