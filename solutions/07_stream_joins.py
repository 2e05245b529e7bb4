# Solutions of notebook 07's exercises, for the instructor (`make solutions`).
# The ksqlDB twin of 07.1 is in solutions/ksql/07_stream_joins.sql.
# %% EXERCISE 07.1
from helpers import run_sql  # what a %%sql cell calls

[joined] = run_sql(wb, """
SELECT
  a.ticker,
  a.ts AS alert_ts,
  v.ts AS variation_ts
FROM alerts AS a
JOIN variations AS v
  ON a.ticker = v.ticker
  AND v.rowtime BETWEEN a.rowtime - INTERVAL '3' MINUTE
                    AND a.rowtime + INTERVAL '3' MINUTE
WHERE v.variation_ex > 0.015
""")
# %% EXERCISE 07.2
lab07 = settings.within("ex07")
PARTITIONS = 4       # AAPL and GOOG: partition 0 of 3, partition 1 of 4
copy_topic(topics.alerts, lab07.topics.alerts, settings, partitions=3)
copy_topic(topics.variations, lab07.topics.variations, settings,
           partitions=PARTITIONS)


def found_partition_by_partition(alerts, variations):
    """Buy signals of a join of partition n with partition n only."""
    return sum(len(buy_signals(a, variations[variations["partition"] == n]))
               for n, a in alerts.groupby("partition"))


print("found:", found_partition_by_partition(
    read_topic(lab07.topics.alerts, settings=settings),
    read_topic(lab07.topics.variations, settings=settings)))
# %% EXERCISE 07.3
def my_buy_signals(bars, threshold):
    """(ticker, alert ts, variation ts) of every buy signal, in pandas."""
    alerts = bars[bars["close"] > PRICE_THRESHOLD]
    big = bars[bars["high"] / bars["low"] - 1 > threshold]
    pairs = alerts.merge(big, on="ticker", suffixes=("_alert", "_var"))
    near = (pairs["ts_var"] - pairs["ts_alert"]).abs() <= 5 * 60_000
    return pairs[near][["ticker", "ts_alert", "ts_var"]]
