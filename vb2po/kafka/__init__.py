"""Kafka at the edge: topics, client construction, the producer's state topic, dead letters."""
