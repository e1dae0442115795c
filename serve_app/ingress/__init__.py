"""The ingress deployment: HTTP routes, gRPC methods, limits, admission, the Kafka producer."""
