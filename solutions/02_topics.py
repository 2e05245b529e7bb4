# Solutions of notebook 02's exercises, for the instructor (`make solutions`).
# %% EXERCISE 02.1
ONE = settings.within("ex02").prefix + "one-partition"
reset_topics(admin, [ONE], partitions=1)     # empty, so a re-run adds nothing
for bar in bars.itertuples():
    value = json.dumps({"ticker": bar.ticker, "ts": bar.ts, "close": bar.close})
    producer.produce(ONE, value=value, key=bar.ticker)
producer.flush();
# %% EXERCISE 02.2
MAX_PARTITIONS_USED = bars["ticker"].nunique()   # 5 keys: 5 partitions at most
MAX_USED_OF_THREE = min(bars["ticker"].nunique(), 3)   # fewer partitions
