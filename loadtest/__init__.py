"""Load test of votes: a locustfile (HTTP and gRPC users) and a runner that reconciles exactly."""
