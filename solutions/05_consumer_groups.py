# Solutions of notebook 05's exercises, for the instructor (`make solutions`).
# %% EXERCISE 05.1
IDLE = 4 - 3         # a partition belongs to one member: the fourth one waits
IDLE_IN_TWO_GROUPS = 0   # every group reads all partitions: 2 members, 3 parts
# %% EXERCISE 05.2
READ = total - 3 * 100   # committed offsets win; `latest` is never consulted
# %% EXERCISE 05.3
from datetime import UTC, datetime


def count_alerts(group):
    """Alerts per (ticker, year), read by a consumer of `group`."""
    counts = {}
    consumer = Consumer(consumer_conf(group, "counter"))
    consumer.subscribe([topics.alerts])
    for batch in batches(consumer):
        for msg in batch:
            alert = json.loads(msg.value())
            ts = datetime.fromtimestamp(alert["ts"] / 1000, UTC)
            key = (alert["ticker"], ts.year)
            counts[key] = counts.get(key, 0) + 1
        consumer.commit(asynchronous=False)   # counted, so done
    consumer.close()
    return counts
