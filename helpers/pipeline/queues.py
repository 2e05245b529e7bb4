"""Queues on Kafka: share groups (KIP-932), the hardened plumbing of notebook 11_queues.

A share group lets several consumers read the *same* partition: the broker hands each record to
one member at a time, locked for a while, and each record is acknowledged on its own (accept,
release for another try, reject). The notebook writes the loop; this module keeps what is not the
lesson: the group's settings, a consumer built from them, and the figure of who got what.

confluent-kafka's ShareConsumer is a Preview (2.15, 2.16): nothing of the workbook that needs a
guarantee uses it.
"""
from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from confluent_kafka import ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from helpers.core.errors import InputError
from helpers.core.settings import Settings
from helpers.infra.clients import client_conf, refused_as_sentence

#: the preview's warning, said once in the lesson instead of once per consumer
logging.getLogger("helpers.kafka.share").addHandler(logging.NullHandler())
OUTCOME_MARKERS = {"sent": "o", "released": "x", "dead letter": "s", "crashed": "v"}
MEMBER_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")


def share_group_settings(admin: AdminClient, group: str, *, delivery_limit: int = 5,
                         lock_seconds: float = 30, start: str = "earliest") -> dict[str, str]:
    """Set a share group's own settings (a group's config, kept by the broker); return them.
    `start` is where a new group begins (Kafka's default is `latest`); a record is given up after
    `delivery_limit` deliveries; a member holds a record for at most `lock_seconds`."""
    if not 2 <= delivery_limit <= 10:
        raise InputError(f"delivery_limit must be between 2 and 10 (the broker's bounds), "
                         f"got {delivery_limit}.")
    values = {"share.auto.offset.reset": start, "share.delivery.count.limit": str(delivery_limit),
              "share.record.lock.duration.ms": str(round(lock_seconds * 1000))}
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    with refused_as_sentence(f"configure share group {group}"):
        admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    return values


def make_share_consumer(settings: Settings, group: str, name: str, batch: int = 5,
                        extra: dict[str, Any] | None = None) -> ShareConsumer:
    """A member of share group `group` that acknowledges each record itself, `batch` at most per poll."""
    conf = {"group.id": group, "client.id": name, "share.acknowledgement.mode": "explicit",
            "max.poll.records": batch, **(extra or {})}
    conf = client_conf(settings, conf)
    conf["logger"] = logging.getLogger("helpers.kafka.share")
    return ShareConsumer(conf)


def plot_deliveries(log: pd.DataFrame, *, title: str = "Who e-mailed which signal, and when",
                    ax: plt.Axes | None = None):
    """Each delivery as a point: time on x, the record's offset on y, one colour per member, one
    marker per outcome (11_queues), on `ax` or a new figure. `log` has columns member, offset,
    seconds, outcome."""
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 4.8), layout="constrained")
    fig = ax.figure
    members = sorted(log["member"].unique())
    for member, color in zip(members, MEMBER_COLORS, strict=False):
        mine = log[log["member"] == member]
        ax.scatter(mine["seconds"], mine["offset"], s=14, color=color,
                   label=f"{member} ({int((mine['outcome'] == 'sent').sum())} sent)")
    for outcome, marker in OUTCOME_MARKERS.items():
        rows = log[log["outcome"] == outcome]
        if outcome != "sent" and len(rows):
            style: dict[str, Any] = ({"facecolors": "none", "edgecolors": "black"} if marker in "os"
                                     else {"color": "black"})
            ax.scatter(rows["seconds"], rows["offset"], s=70, marker=marker, lw=1.2,
                       label=f"{outcome}: {len(rows)}", **style)
    ax.set(title=title, xlabel="seconds since the first poll", ylabel="offset in the queue")
    ax.set_ylim(bottom=-2)
    ax.legend(loc="best", fontsize="small", ncol=2)
    return fig, ax
