# Solutions of notebook 11's exercises, for the instructor (`make solutions`).
# %% EXERCISE 11.1
def decide(ok, delivery, limit):
    """ACCEPT, RELEASE or REJECT a record, after its e-mail."""
    if ok:
        return AcknowledgeType.ACCEPT
    if delivery < limit:
        return AcknowledgeType.RELEASE
    return AcknowledgeType.REJECT

# %% EXERCISE 11.2
def members_with_work(kind, members):
    """How many of `members` get records from a one-partition topic."""
    return 1 if kind == "group" else members
