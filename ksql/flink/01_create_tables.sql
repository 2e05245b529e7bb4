-- Flink SQL twin of the ksqlDB streams (05_ksql): the three topics as tables.
-- Same topics, fields and rows as ksql/. Key = ticker (raw UTF-8 bytes), value
-- = JSON with every field, ticker included. Event time is the bar time `ts`
-- (epoch ms UTC), not the time Kafka received the message.
-- Watermark: each Kafka partition may run up to 1 minute (one bar) out of
-- order; a row later than that may miss its partners. Watermarks are kept
-- per partition, so partitions that lag each other are not late.
-- scan_bounded_mode: 'latest-offset' reads up to the end the topic had
-- when the job started, then ends; 'unbounded' runs until cancelled.
-- CLOSE is a reserved word in Flink SQL (not in ksqlDB): write `close`.
-- isolation.level=read_committed: Java consumers read uncommitted messages by
-- default; the router's exactly-once mode writes in transactions.
-- kafka_login: on a shared cluster, how the job logs in and checks the broker
-- ('properties.security.protocol', 'properties.sasl.jaas.config', ...);
-- nothing on a laptop.

CREATE TABLE alerts (
  ticker STRING,
  ts BIGINT,
  `close` DOUBLE,
  volume DOUBLE,
  transactions BIGINT,
  rowtime AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '1' MINUTE
) WITH (
  'connector' = 'kafka',
  'topic' = '${alerts_topic}',
  'properties.bootstrap.servers' = '${bootstrap_servers}',
  ${kafka_login}
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${scan_bounded_mode}',
  'key.format' = 'raw',
  'key.fields' = 'ticker',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

CREATE TABLE variations (
  ticker STRING,
  ts BIGINT,
  variation_ex DOUBLE,
  variation_in DOUBLE,
  rowtime AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR rowtime AS rowtime - INTERVAL '1' MINUTE
) WITH (
  'connector' = 'kafka',
  'topic' = '${variations_topic}',
  'properties.bootstrap.servers' = '${bootstrap_servers}',
  ${kafka_login}
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${scan_bounded_mode}',
  'key.format' = 'raw',
  'key.fields' = 'ticker',
  'value.format' = 'json',
  'value.fields-include' = 'ALL'
);

-- The sink: one message per (alert, variation) pair. Kafka's message timestamp
-- (metadata column msg_ts) is set to the alert time, like ksqlDB's ROWTIME.
CREATE TABLE buy (
  ticker STRING,
  alert_ts BIGINT,
  variation_ts BIGINT,
  `close` DOUBLE,
  variation_ex DOUBLE,
  variation_in DOUBLE,
  msg_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  'connector' = 'kafka',
  'topic' = '${buy_topic}',
  'properties.bootstrap.servers' = '${bootstrap_servers}',
  ${kafka_login}
  'key.format' = 'raw',
  'key.fields' = 'ticker',
  'value.format' = 'json',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'at-least-once'
);
