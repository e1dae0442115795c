"""votes: a distributed voting pipeline on Ray Serve, Kafka, Redis and MongoDB."""

__version__ = "0.1.0"
