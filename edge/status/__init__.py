"""The local status page and Prometheus metrics: a worker that watches the line and serves what it sees."""
