# Solutions of notebook 10's exercises, for the instructor (`make solutions`).
# %% EXERCISE 10.1
wide = NewTopic("wide", num_partitions=3, replication_factor=5,
                config={"min.insync.replicas": "3"})
MAY_FAIL = 5 - 3     # replicas − min.insync.replicas: 3 copies must remain
# %% EXERCISE 10.2
seqs = set(read_sequence_numbers(lab.settings, RF1)["seq"])
MISSING = set(fast.sent) - seqs
LOST = set(fast.delivered) & MISSING    # confirmed, yet gone: usually empty
