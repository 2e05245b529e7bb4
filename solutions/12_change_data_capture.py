# Solutions of notebook 12's exercises, for the instructor (`make solutions`).
# %% EXERCISE 12.1
def rebuild(changes):
    """id -> close of the rows that exist after every change, in order."""
    rows = {}
    for row in changes.itertuples():
        if row.op in ("r", "c", "u"):
            rows[row.id] = row.after["close"]
        elif row.op == "d":
            rows.pop(row.id, None)
    return rows

# %% EXERCISE 12.2
def slim_config(config, columns):
    """A copy of `config` publishing only `columns` (and the id)."""
    slim = dict(config)
    table = config["table.include.list"]          # database.table
    names = [f"{table}.{column}" for column in ["id", *columns]]
    slim["column.include.list"] = ",".join(names)
    return slim
