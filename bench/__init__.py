"""`make bench`: side-by-side throughput and latency of every ingestion path and sink."""
