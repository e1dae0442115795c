"""The consumer pool: Kafka -> vote log and counters, exactly once, scaled on lag."""
