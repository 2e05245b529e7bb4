"""What one student may use on the class server, enforced by Kafka and MariaDB themselves.

A runaway loop must not stop the class: without limits, one student's plain
producer wrote 6.7 GB in 33 s and raised another student's p99 latency 4.4x
(6.8x in bench.runaway). The class server therefore starts with:
- **byte-rate quotas** per student (Kafka's user quotas, the default for every
  user but the instructor): produce and fetch rates, and the rate at which
  partitions may be created or deleted. Kafka slows a client over its quota
  down (it holds the answer back); nothing fails, and `clients.py` says so
  once per process;
- **a size cap on everything a student's topics keep**: the broker deletes a
  partition's oldest segments beyond `partition_mb` (its default
  `log.retention.bytes`), and a policy class (stack/class-server/
  StudentTopicLimits.java, compiled here) refuses a topic with more than
  `topic_partitions` partitions, a student with more than
  `student_partitions` in all, a larger retention, larger segments, or a
  compact-only topic. So a student's topics hold at most `student_cap_mb`,
  whatever they do (plus, for a moment, what the produce quota lets through
  before the next retention check: peaks of 55-60 MB in bench.runaway);
- **MariaDB connection limits** per student (`MAX_USER_CONNECTIONS`).
Each refusal reaches the student as one sentence. The rules' numbers live in
`ClassLimits`; the I/O (javac, kafka-configs) in the functions below it.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from helpers.core.settings import PROJECT_ROOT, Settings
from helpers.infra.prereqs import ensure_programs
from helpers.infra.processes import run_command

POLICY_SOURCE = PROJECT_ROOT / "stack" / "class-server" / "StudentTopicLimits.java"
POLICY_CLASS = "workbook.StudentTopicLimits"
MB = 1024 * 1024
JAVAC_TIMEOUT_S = 120
RETENTION_CHECK_MS = 5_000          # Kafka's default is 5 minutes: a runaway would fill that long
DELETE_DELAY_MS = 1_000             # a deleted segment's files go after 1 s (Kafka's default: 60 s)
INSTRUCTOR_RATE = 1024 * MB         # bytes/s: the instructor's own tools are never slowed down


@dataclass(frozen=True)
class ClassLimits:
    """What each student may use. The defaults fit the whole course with room to explore. Measured
    after nbval ran the solved notebooks on a class server: one student's topics held 128
    partitions and asked for 15 more (the cap was 128 then), the largest partition 1.2 MB; the
    table topic of 06 holds about 1.9 MB before compaction, in one partition."""

    produce_mb_s: float = 4.0        # averaged over Kafka's 11-s window: a replay never reaches it
    fetch_mb_s: float = 10.0
    partition_mutations_s: float = 20.0    # partitions created or deleted per second (a reset: ~100)
    topic_partitions: int = 12
    student_partitions: int = 192
    partition_mb: int = 3
    segment_mb: int = 1
    mysql_connections: int = 20

    @property
    def student_cap_mb(self) -> int:
        """The most a student's topics can keep on disk: every partition full, plus its open segment."""
        return self.student_partitions * (self.partition_mb + self.segment_mb)

    def quota_configs(self) -> dict[str, str]:
        """Kafka's user-quota settings (kafka-configs --entity-type users) for every student."""
        return {"producer_byte_rate": str(int(self.produce_mb_s * MB)),
                "consumer_byte_rate": str(int(self.fetch_mb_s * MB)),
                "controller_mutation_rate": f"{self.partition_mutations_s:g}"}

    def broker_properties(self, admin: dict[str, str]) -> dict[str, str]:
        """server.properties settings: the broker's size defaults and the policy, with the Admin client
        settings (`admin`) it counts partitions with."""
        return {
            "create.topic.policy.class.name": POLICY_CLASS,
            "alter.config.policy.class.name": POLICY_CLASS,
            "log.retention.bytes": str(self.partition_mb * MB),
            "log.segment.bytes": str(self.segment_mb * MB),
            "log.retention.check.interval.ms": str(RETENTION_CHECK_MS),
            "log.segment.delete.delay.ms": str(DELETE_DELAY_MS),
            "workbook.limits.topic.partitions": str(self.topic_partitions),
            "workbook.limits.student.partitions": str(self.student_partitions),
            "workbook.limits.partition.bytes": str(self.partition_mb * MB),
            "workbook.limits.segment.bytes": str(self.segment_mb * MB),
            **{f"workbook.limits.admin.{key}": value for key, value in admin.items()},
        }

    def summary(self) -> str:
        """The limits in one line, for `workbook class up`."""
        return (f"each student: produce {self.produce_mb_s:g} MB/s, fetch {self.fetch_mb_s:g} MB/s, "
                f"{self.topic_partitions} partitions per topic and {self.student_partitions} in all, "
                f"{self.partition_mb} MB kept per partition (at most {self.student_cap_mb} MB in all), "
                f"{self.mysql_connections} MySQL connections")


def build_policy(settings: Settings) -> Path:
    """Compile StudentTopicLimits.java against the Kafka jars (again only when it changed); return the
    folder of its classes, for the broker's class path."""
    out = settings.state_dir / "libs" / "class-server"
    source = POLICY_SOURCE.read_bytes()
    stamp = out / "source.sha256"
    digest = hashlib.sha256(source).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return out
    ensure_programs(("javac",))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    libs = settings.state_dir / "libs" / "kafka"
    run_command(["javac", "-nowarn", "-d", str(out), "-cp", str(libs / "*"), str(POLICY_SOURCE)],
                timeout=JAVAC_TIMEOUT_S, what="javac StudentTopicLimits.java")
    stamp.write_text(digest)
    return out


def set_quotas(admin_settings: Settings, limits: ClassLimits | None, instructor: str) -> None:
    """Give every user the students' quotas (`limits` None: remove them), and the instructor none."""
    from helpers.infra.kafka_tools import kafka_tool_output

    users = ["--alter", "--entity-type", "users"]
    keys = ClassLimits().quota_configs()
    if limits is None:
        kafka_tool_output(admin_settings, "kafka-configs",
                          [*users, "--entity-default", "--delete-config", ",".join(keys)])
        return
    kafka_tool_output(admin_settings, "kafka-configs",
                      [*users, "--entity-default", "--add-config", joined(limits.quota_configs())])
    unlimited = {key: str(INSTRUCTOR_RATE) for key in keys} | {"controller_mutation_rate": "1000"}
    kafka_tool_output(admin_settings, "kafka-configs",
                      [*users, "--entity-name", instructor, "--add-config", joined(unlimited)])


def joined(configs: dict[str, str]) -> str:
    """kafka-configs' form of several settings: a=1,b=2."""
    return ",".join(f"{key}={value}" for key, value in configs.items())
