# Solutions of notebook 06's exercises, for the instructor (`make solutions`).
# %% EXERCISE 06.1
lab06 = settings.within("ex06")
PARTITIONS = 4       # AAPL and GOOG: partition 0 of 3, partition 1 of 4
SURVIVE = "none"     # so no ticker meets its variations partition by partition
copy_topic(topics.alerts, lab06.topics.alerts, settings, partitions=3)
copy_topic(topics.variations, lab06.topics.variations, settings,
           partitions=PARTITIONS)
# %% EXERCISE 06.2
def my_buy_signals(bars, threshold):
    """(ticker, alert ts, variation ts) of every buy signal, in pandas."""
    alerts = bars[bars["close"] > PRICE_THRESHOLD]
    big = bars[bars["high"] / bars["low"] - 1 > threshold]
    pairs = alerts.merge(big, on="ticker", suffixes=("_alert", "_var"))
    near = (pairs["ts_var"] - pairs["ts_alert"]).abs() <= 5 * 60_000
    return pairs[near][["ticker", "ts_alert", "ts_var"]]
