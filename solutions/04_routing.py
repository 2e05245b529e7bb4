# Solutions of notebook 04's exercises, for the instructor (`make solutions`).
# %% EXERCISE 04.1
def is_sell(bar):
    """True when the bar fell more than 5 % from open to close."""
    return variation_in(bar["close"], bar["open"]) < -0.05

def route_sell(msg, producer, topic):
    """Produce the bar of a pricelist message to `topic` if it is a sell."""
    bar = json.loads(msg.value())
    if is_sell(bar):
        producer.produce(topic, msg.value(), msg.key(), timestamp=bar["ts"])
# %% EXERCISE 04.2
ex04 = settings.within("ex04")
crash_router(ex04, bars, after_batches=3)
print(run_router(ex04, progress=False))          # the restart
routed = read_topic(ex04.topics.variations, settings=ex04)
DUPLICATES = routed.duplicated(["ticker", "ts"]).sum()
