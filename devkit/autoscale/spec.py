"""What the autoscaling scenario runs (ScenarioSpec), what it records (Row, Result), and the
app config it deploys (app_config): devkit/autoscale/scenario.py says why each value is what
it is."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devkit.autoscale.fake_cluster import ClusterSpec
from devkit.names import RunNames

ROOT = Path(__file__).resolve().parents[2]
APP = "votes"
INGRESS, POOL = "VoteIngress", "VotePersister"
BANDS = [
    ("Alux Nahual", "Alux Nahual"),
    ("Bohemia Suburbana", "Sueños"),
    ("Viernes Verde", "V"),
    ("Easy Easy", "EE"),
    ("Malacates Trébol Shop", "Niño Pilas"),
    ("Ricardo Arjona", "Animal"),
]


@dataclass
class ScenarioSpec:
    records: int = 300_000  # 30 s at produce_rate: longer than a new replica takes to start
    produce_rate: float = 10_000  # records/s, at most
    http_port: int = 48000
    grpc_port: int = 49000
    # None: the first empty database from 15 down to 3, claimed with an owner key. Redis has 16
    # databases and concurrent test sessions pick their own: this run never empties a database,
    # it only deletes the app's keys in the one it claimed, at the end, if it still owns it.
    redis_db: int | None = None
    sample_every_s: float = 2.0
    # Each pool replica takes a whole CPU: the head (2 CPUs, 0.5 for the ingress) fits one.
    pool_cpus: float = 1.0
    # 1 on the head + one per worker node (cluster max_workers 2).
    pool_max_replicas: int = 3
    # config.yaml's policy with the waits shortened, so that the whole scenario fits in minutes,
    # and a target lag one replica cannot keep under at produce_rate: the pool drains ~10k/s on
    # one CPU, so config.yaml's 10,000 was never crossed on a fast run (lag peaked near 6,000).
    policy_overrides: dict[str, Any] = field(
        default_factory=lambda: {
            "target_lag_per_replica": 1_000,
            "low_water_lag": 200,
            "drained_hold_s": 10,
            "downscale_cooldown_s": 10,
            "upscale_cooldown_s": 5,
        }
    )
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    # Bounds of each step (seconds).
    deploy_timeout_s: float = 180
    scale_up_timeout_s: float = 60
    node_up_timeout_s: float = 120
    drain_timeout_s: float = 180
    scale_down_timeout_s: float = 150
    count_timeout_s: float = 60


@dataclass
class Row:
    t: float  # seconds since the burst started (negative: before it)
    produced: int  # records Kafka acknowledged so far
    rate: float  # acknowledged records per second since the previous row
    lag: int | None  # records the consumer group is behind, over all partitions
    ingress: int  # running replicas
    pool: int  # running replicas
    pool_starting: int  # replicas starting, or pending until a node has room
    nodes: int  # alive nodes, head included
    cpus_used: float
    cpus_total: float


@dataclass
class Result:
    spec: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)  # what first happened when (t)
    redis_db: int | None = None
    produced: int = 0
    produce_errors: int = 0
    redis_total: int | None = None
    mongo_count: int | None = None
    failure: str | None = None
    dashboard: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def app_config(names: RunNames, spec: ScenarioSpec, redis_db: int) -> dict[str, Any]:
    """config.yaml, isolated and adapted for this cluster (see the module docstring)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["proxy_location"] = "HeadOnly"
    config["http_options"]["port"] = spec.http_port
    config["grpc_options"]["port"] = spec.grpc_port
    (app,) = config["applications"]
    app["args"] |= {
        "kafka_topic": names.topic,
        "kafka_dlq_topic": names.dlq_topic,
        "kafka_consumer_group": names.group,
        "redis_url": f"redis://127.0.0.1:6379/{redis_db}",
        "mongo_database": names.mongo_database,
    }
    (pool,) = [d for d in app["deployments"] if d["name"] == POOL]
    pool["ray_actor_options"]["num_cpus"] = spec.pool_cpus
    pool["autoscaling_config"]["max_replicas"] = spec.pool_max_replicas
    pool["autoscaling_config"]["policy"]["policy_kwargs"] |= spec.policy_overrides
    return config
