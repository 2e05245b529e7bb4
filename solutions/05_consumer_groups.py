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
# %% EXERCISE 05.4
def given_up(protocol, before, after):
    """Partitions a member gives up when a new member joins its group."""
    if protocol == "classic":
        return set(before)          # eager: everything, then it rejoins
    return set(before) - set(after)  # incremental: only what moves
# %% EXERCISE 05.5
from helpers import group_offsets, lagging_group

lagging = lagging_group(settings)
lag = group_offsets(admin, lagging, [topics.pricelist], settings)["lag"]
MOST_BEHIND = int(lag.droplevel(0).idxmax())   # what the LAG column shows
TOTAL_LAG = int(lag.sum())
