# Solutions of notebook 06's exercises, for the instructor (`make solutions`).
# The students write them in %%sql cells; here they run through run_sql, which a %%sql cell calls.
# The ksqlDB twins are in solutions/ksql/06_stream_sql.sql.
# %% EXERCISE 06.1
[ohlc] = run_sql(wb, """
SELECT
  ticker,
  window_start,
  FIRST_VALUE(`open`) AS `open`,
  MAX(high) AS high,
  MIN(low) AS low,
  LAST_VALUE(`close`) AS `close`,
  SUM(volume) AS volume
FROM TABLE(TUMBLE(TABLE bars, DESCRIPTOR(rowtime), INTERVAL '5' MINUTE))
GROUP BY ticker, window_start, window_end
""")
# %% EXERCISE 06.2
[ranges] = run_sql(wb, """
SELECT
  ticker,
  window_start,
  COUNT(*) AS bars,
  MIN(low) AS low,
  MAX(high) AS high
FROM TABLE(TUMBLE(TABLE bars, DESCRIPTOR(rowtime), INTERVAL '1' DAY))
GROUP BY ticker, window_start, window_end
""")
