"""Layer 2, the pipeline: one module per stage, from bars to buy signals and what follows them.

sources → db → topics → produce → route → stream SQL (flinksql, ksqldb,
streamsql) → notify, paper; live runs the stages together, dashboard shows
their history; replication measures them while brokers fail. Imports from
core and infra only.
"""
