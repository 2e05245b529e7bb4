# Solutions of notebook 10's exercises, for the instructor (`make solutions`).
# %% EXERCISE 10.1
wide = NewTopic("wide", num_partitions=3, replication_factor=5,
                config={"min.insync.replicas": "3"})
MAY_FAIL = 5 - 3          # replicas − min.insync.replicas: 3 copies must remain
MAY_FAIL_IF_ONE = 5 - 1   # one copy is enough: a weaker promise
# %% EXERCISE 10.2
def missing_and_lost(run, topic):
    seqs = set(read_sequence_numbers(lab.settings, topic)["seq"])
    missing = set(run.sent) - seqs
    lost = set(run.delivered) & missing      # confirmed, yet gone
    return missing, lost
