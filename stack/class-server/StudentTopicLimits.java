/*
 * The class server's limits on what a student's topics may hold, enforced by the broker.
 *
 * Kafka calls a CreateTopicPolicy before it creates a topic and an
 * AlterConfigPolicy before it changes a topic's settings; a refusal reaches the
 * client as POLICY_VIOLATION with the message below, one sentence. A student's
 * topics are those named "<student>.<...>" (the prefix their ACLs allow);
 * internal topics and the instructor's unprefixed ones are left alone.
 *
 * The rules, with the broker's defaults log.retention.bytes and log.segment.bytes
 * set to the same limits, bound a student's disk use whatever they do:
 *   - at most `workbook.limits.topic.partitions` partitions per topic, and
 *     `workbook.limits.student.partitions` in all (counted with an Admin client on
 *     the broker's own listener, plus the topics approved in the last 30 s that
 *     the broker does not list yet);
 *   - retention.bytes, if given, between 1 and `workbook.limits.partition.bytes`;
 *   - segment.bytes at most `workbook.limits.segment.bytes`;
 *   - cleanup.policy must include delete (a compact-only topic has no size limit).
 * Adding partitions to a topic is refused by an ACL (DENY ALTER), not here:
 * Kafka calls no policy for CreatePartitions.
 */
package workbook;

import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.PolicyViolationException;
import org.apache.kafka.server.policy.AlterConfigPolicy;
import org.apache.kafka.server.policy.CreateTopicPolicy;

public final class StudentTopicLimits implements CreateTopicPolicy, AlterConfigPolicy {
    static final String PREFIX = "workbook.limits.";
    static final long MB = 1024 * 1024;
    static final long RECENT_MS = 30_000;

    private int topicPartitions;
    private int studentPartitions;
    private long partitionBytes;
    private long segmentBytes;
    private int defaultPartitions;
    private Properties adminConfig;
    private Admin admin;
    /** Topics approved lately: topic -> {partitions, time approved}. */
    private final Map<String, long[]> approved = new HashMap<>();

    @Override
    public void configure(Map<String, ?> configs) {
        topicPartitions = Integer.parseInt(setting(configs, "topic.partitions"));
        studentPartitions = Integer.parseInt(setting(configs, "student.partitions"));
        partitionBytes = Long.parseLong(setting(configs, "partition.bytes"));
        segmentBytes = Long.parseLong(setting(configs, "segment.bytes"));
        Object partitions = configs.get("num.partitions");
        defaultPartitions = partitions == null ? 1 : Integer.parseInt(partitions.toString());
        adminConfig = new Properties();
        for (Map.Entry<String, ?> entry : configs.entrySet()) {
            if (entry.getKey().startsWith(PREFIX + "admin.")) {
                adminConfig.put(entry.getKey().substring((PREFIX + "admin.").length()), entry.getValue().toString());
            }
        }
    }

    private static String setting(Map<String, ?> configs, String name) {
        Object value = configs.get(PREFIX + name);
        if (value == null) {
            throw new IllegalArgumentException("StudentTopicLimits needs the broker setting " + PREFIX + name);
        }
        return value.toString();
    }

    /** The student a topic belongs to ("alice" for "alice.pricelist"), or null if none. */
    static String studentOf(String topic) {
        int dot = topic.indexOf('.');
        return topic.startsWith("_") || dot <= 0 ? null : topic.substring(0, dot);
    }

    @Override
    public void validate(CreateTopicPolicy.RequestMetadata request) throws PolicyViolationException {
        String topic = request.topic();
        String student = studentOf(topic);
        if (student == null) {
            return;
        }
        int partitions = request.replicasAssignments() != null && !request.replicasAssignments().isEmpty()
                ? request.replicasAssignments().size()
                : request.numPartitions() != null && request.numPartitions() > 0
                ? request.numPartitions() : defaultPartitions;
        if (partitions > topicPartitions) {
            throw new PolicyViolationException(String.format(
                    "the class server allows at most %d partitions per topic, and %s asks for %d",
                    topicPartitions, topic, partitions));
        }
        checkConfigs(topic, request.configs());
        synchronized (this) {
            int used = partitionsOf(student, topic);
            if (used + partitions > studentPartitions) {
                throw new PolicyViolationException(String.format(
                        "the class server allows %s at most %d partitions in all, %d are in use and %s asks "
                        + "for %d more: delete topics you no longer need (workbook reset deletes the course's)",
                        student, studentPartitions, used, topic, partitions));
            }
            approved.put(topic, new long[] {partitions, System.currentTimeMillis()});
        }
    }

    @Override
    public void validate(AlterConfigPolicy.RequestMetadata request) throws PolicyViolationException {
        ConfigResource resource = request.resource();
        if (resource.type() == ConfigResource.Type.TOPIC && studentOf(resource.name()) != null) {
            checkConfigs(resource.name(), request.configs());
        }
    }

    private void checkConfigs(String topic, Map<String, String> configs) {
        String retention = configs.get("retention.bytes");
        if (retention != null) {
            long bytes = Long.parseLong(retention.trim());
            if (bytes <= 0 || bytes > partitionBytes) {
                throw new PolicyViolationException(String.format(
                        "the class server keeps at most %d MB per partition, so retention.bytes of %s must be "
                        + "between 1 and %d, not %s", partitionBytes / MB, topic, partitionBytes, retention));
            }
        }
        String segment = configs.get("segment.bytes");
        if (segment != null && Long.parseLong(segment.trim()) > segmentBytes) {
            throw new PolicyViolationException(String.format(
                    "the class server allows segments of at most %d bytes, so segment.bytes of %s cannot be %s",
                    segmentBytes, topic, segment));
        }
        String cleanup = configs.get("cleanup.policy");
        if (cleanup != null && !cleanup.toLowerCase().contains("delete")) {
            throw new PolicyViolationException(String.format(
                    "on the class server a topic must delete as well as compact, or its size has no limit: "
                    + "give %s cleanup.policy=compact,delete", topic));
        }
    }

    /** Partitions of the student's topics other than `except`: what the broker lists and what was approved. */
    private int partitionsOf(String student, String except) {
        Map<String, Integer> counted = new HashMap<>();
        try {
            if (admin == null) {
                admin = Admin.create(adminConfig);
            }
            var listed = admin.listTopics().names().get(10, TimeUnit.SECONDS);
            // an approved topic the broker lists is counted from the listing from now on (and not at
            // all once deleted); one it does not list yet counts for a while
            long now = System.currentTimeMillis();
            approved.entrySet().removeIf(entry -> listed.contains(entry.getKey())
                    || now - entry.getValue()[1] > RECENT_MS);
            approved.forEach((topic, entry) -> {
                if (student.equals(studentOf(topic))) {
                    counted.put(topic, (int) entry[0]);
                }
            });
            var names = listed.stream().filter(name -> student.equals(studentOf(name))).toList();
            for (var described : admin.describeTopics(names).topicNameValues().entrySet()) {
                try {
                    TopicDescription description = described.getValue().get(10, TimeUnit.SECONDS);
                    counted.put(description.name(), description.partitions().size());
                } catch (ExecutionException gone) {    // deleted since it was listed
                    counted.remove(described.getKey());
                }
            }
        } catch (Exception exc) {
            throw new PolicyViolationException("the class server could not count the partitions of "
                    + student + " (" + exc.getMessage() + "): try again in a moment");
        }
        counted.remove(except);
        return counted.values().stream().mapToInt(Integer::intValue).sum();
    }

    @Override
    public void close() {
        if (admin != null) {
            admin.close();
        }
    }
}
