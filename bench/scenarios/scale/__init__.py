"""`make bench-scale`: how ingestion scales with ingress replicas, and persisting with consumers.

    .venv/bin/python -m bench.scale                   # 1,2,4,8 replicas; 1-6 consumers; 3 repeats
    .venv/bin/python -m bench.scale --quick           # a smoke: 1,2 replicas; 1,2 consumers
    .venv/bin/python -m bench.scale --replicas 1,2 --series http_batch --out /tmp/scale

Ingest (ingest.py): for each N in --replicas, a fresh `serve run` of `bench.apps:build_ingest_only`
(VoteIngress as `make run` builds it, the pool idle: the votes stay in Kafka) in the haproxy mode
`make run` ships, with VoteIngress fixed at N replicas. Each series (HTTP and gRPC single votes,
HTTP batches of 1000; --series) runs --repeats bounded windows from P load-generator processes (one
per core but one, or --loadgen-procs) that together keep N x a per-replica concurrency in flight.
Every repeat reconciles: votes accepted == records in Kafka, no errors.

Persist (persist.py): a 6-partition topic preloaded once, then 1..6 consumer processes
(`bench.pool_worker`, the VotePersister loop) drain it in a fresh group per repeat
(bench/scenarios/persist.py persist_run): records == counted in Redis == stored in MongoDB.

Each point also records the CPU of every process class as a share of the machine's cores (the
core count is read, not assumed), so that the report says where saturation comes from.
Efficiency(N) = rate(N) / (N x rate(1)). Writes scale.{json,md,png} to --out (bench/results).
Own topics, groups, MongoDB databases and Redis database (--redis-db, default 8), own ports
(--http-port, --grpc-port, --port-block); all removed at the end.
"""
