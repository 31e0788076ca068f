"""Benchmarks against the real local stack (Kafka broker, PostgreSQL, SQLite over ODBC).

Not part of `make test`; run with `make bench-producer`. Results and their reading: BENCHMARKS.md.
"""
