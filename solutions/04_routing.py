# Solutions of notebook 04's exercises, for the instructor (`make solutions`).
# %% EXERCISE 04.1
def is_sell(bar):
    """True when the bar fell more than 5 % from open to close."""
    return variation_in(bar["close"], bar["open"]) < -0.05


def route_sells(consumer, producer, topic):
    """Read every partition of `consumer` to its end, produce each sell to
    `topic`, commit each batch once its sells are delivered; return the
    number of bars read."""
    read, at_end, assigned = 0, set(), set()
    while not assigned or not assigned <= at_end:
        in_batch = 0
        for msg in consumer.consume(500, timeout=1.0):
            if not msg.error():
                bar = json.loads(msg.value())
                if is_sell(bar):
                    producer.produce(topic, msg.value(), msg.key(),
                                     timestamp=bar["ts"])
                in_batch += 1
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            else:
                raise KafkaException(msg.error())
        producer.flush()                      # the sells are delivered...
        if in_batch:
            consumer.commit(asynchronous=False)   # ...so the bars are done
        read += in_batch
        assigned = {p.partition for p in consumer.assignment()}
    return read
# %% EXERCISE 04.2
ex04 = settings.within("ex04")
crash_router(ex04, bars, after_batches=3)
print(run_router(ex04, progress=False))          # the restart
routed = read_topic(ex04.topics.variations, settings=ex04)
DUPLICATES = routed.duplicated(["ticker", "ts"]).sum()
