# Solutions of notebook 03's exercises, for the instructor (`make solutions`).
# %% EXERCISE 03.1
def send_bars(producer, topic, bars):
    """Send every bar; return how many the broker confirmed."""
    confirmed = []

    def on_delivery(err, msg):
        if err is None:
            confirmed.append(msg.offset())

    for record in bars.to_dict("records"):
        key, value, ts = bar_message(record)
        producer.produce(topic, value=value, key=key, timestamp=ts,
                         on_delivery=on_delivery)
        producer.poll(0)                     # serve the reports as they come
    producer.flush()                         # wait for the rest
    return len(confirmed)
# %% EXERCISE 03.2
PREDICTED = 2 * len(bars)    # idempotence drops retries, not a second replay
