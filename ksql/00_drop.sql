-- 00_drop.sql: remove the buy query so 02_buy_signals.sql can re-create it
-- (${buy_stream} is named after the buy topic: buy_stream for `buy`)
-- (for example with another variation threshold), or stop it.
-- DROP STREAM also terminates the query that writes into the stream
-- (ksqlDB 0.15+), so no TERMINATE with a generated query id is needed.
-- The `buy` topic is kept: the workbook empties it itself (helpers.pipeline.topics.
-- reset_topics) before a new query starts, so buy signals of the old and the
-- new threshold never mix, and a re-create never races an asynchronous
-- topic deletion.
-- The input streams and their topics (alerts, variations) are NOT dropped:
-- they hold the router's output, which the new query reads again.

DROP STREAM IF EXISTS ${buy_stream};
