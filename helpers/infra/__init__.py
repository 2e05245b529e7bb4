"""Layer 1, infrastructure: the services and the processes behind them, and the clients that reach them.

The stack (local JVMs and MariaDB, Docker Compose, or external services),
process control, the lab cluster of notebook 10, the SMTP sink, Kafka client
configuration, and the `Workbook` that owns the settings and every long-lived
client. It knows nothing of the pipeline; it imports from core only.
"""
