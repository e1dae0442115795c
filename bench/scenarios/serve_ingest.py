"""Serve ingest: the framework's floor (no-op app), ingestion alone (the pool idle) and the whole
app in a closed loop, over HTTP and gRPC, single votes and batches, in each Serve mode."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from bench.harness.env import log
from bench.harness.plan import SERVE_PATHS, suffix_of
from bench.harness.serve_instance import ServeInstance
from bench.harness.summary import failed
from bench.harness.variants import BATCH_TRANSACTIONS, BATCH_TRANSACTIONS_SCENARIO

if TYPE_CHECKING:
    from bench.harness.runner import Bench


def serve_noop(bench: Bench, chosen: list[str], mode: str) -> None:
    """serve_noop_{http,grpc}: Serve with our routes and no work at all, the framework's floor."""
    suffix = suffix_of(mode)
    with bench.serving("noop", mode, "bench.apps:build_noop") as (instance, _topic, startup_s):
        for name, protocol in (("serve_noop_http", "http"), ("serve_noop_grpc", "grpc")):
            if name not in chosen:
                continue
            bench.record(
                name + suffix,
                bench.repeat(
                    name + suffix,
                    lambda n=name + suffix, p=protocol: bench.ingest(
                        n,
                        protocol=p,
                        kind="single",
                        http=("127.0.0.1", instance.http_port),
                        grpc_target=instance.grpc_target,
                        topic=None,
                    ),
                ),
                path=protocol,
                kind="single",
                mode=mode,
                app="bench.apps:build_noop",
                serve_env=instance.env_applied,
                startup_s=startup_s,
                unit="requests (no work)",
            )


def serve_ingest_only(bench: Bench, chosen: list[str], mode: str) -> None:
    """serve_{http,grpc}_{single,batch}_ingest: VoteIngress as `make run` builds it, pool idle."""
    suffix = suffix_of(mode)
    transactions = bench.plan.batch_transactions
    baseline = {BATCH_TRANSACTIONS.setting: BATCH_TRANSACTIONS.values[transactions[0]]}
    with bench.serving("ingest", mode, "bench.apps:build_ingest_only", baseline) as (
        instance,
        topic,
        startup_s,
    ):
        for key, (protocol, kind) in SERVE_PATHS.items():
            name = f"serve_{key}_ingest"
            if name not in chosen:
                continue
            if name == BATCH_TRANSACTIONS_SCENARIO:
                batch_transaction_variants(bench, name, mode, instance, topic, startup_s)
                continue
            bench.record(
                name + suffix,
                bench.repeat(
                    name + suffix,
                    lambda n=name + suffix, p=protocol, k=kind: bench.ingest(
                        n,
                        protocol=p,
                        kind=k,
                        http=("127.0.0.1", instance.http_port),
                        grpc_target=instance.grpc_target,
                        topic=topic,
                    ),
                ),
                path=protocol,
                kind=kind,
                mode=mode,
                app="bench.apps:build_ingest_only",
                serve_env=instance.env_applied,
                startup_s=startup_s,
            )


def batch_transaction_variants(
    bench: Bench, base: str, mode: str, instance: ServeInstance, topic: str, startup_s: float
) -> None:
    """serve_http_batch_ingest under each --batch-transactions value: the baseline on the
    running ingest-only app, each other value on an app of its own beside it, their repeats
    interleaved (one `serve run` per value: the setting is read when a replica starts)."""
    chosen = bench.plan.batch_transactions
    names = {
        value: BATCH_TRANSACTIONS.name(base, value, chosen[0]) + suffix_of(mode) for value in chosen
    }
    apps: dict[str, tuple[ServeInstance, str, float]] = {chosen[0]: (instance, topic, startup_s)}
    with contextlib.ExitStack() as stack:
        for value in chosen[1:]:
            try:
                apps[value] = stack.enter_context(
                    bench.serving(
                        f"ingest-{BATCH_TRANSACTIONS.suffixes[value]}",
                        mode,
                        "bench.apps:build_ingest_only",
                        {BATCH_TRANSACTIONS.setting: BATCH_TRANSACTIONS.values[value]},
                        beside=True,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the baseline and the others still run
                log(f"{names[value]}: FAILED: {type(exc).__name__}: {exc}")
                bench.scenarios.append({"name": f"{names[value]} (failed)"} | failed(exc))
        chosen = [value for value in chosen if value in apps]

        def one(value: str) -> dict[str, Any]:
            app, app_topic, _ = apps[value]
            assert app.proc is not None
            bench.measured_groups = [app.proc.pid]  # the CPU meter and the profiler: this app's
            return bench.ingest(
                names[value],
                protocol="http",
                kind="batch",
                http=("127.0.0.1", app.http_port),
                grpc_target=app.grpc_target,
                topic=app_topic,
            )

        runs = bench.variant_repeats(
            BATCH_TRANSACTIONS, chosen, names, one, bench.plan.repeats_of(base)
        )
        assert instance.proc is not None
        bench.measured_groups = [instance.proc.pid]
    for value in chosen:
        app, _, app_startup_s = apps[value]
        bench.record(
            names[value],
            runs[value],
            path="http",
            kind="batch",
            mode=mode,
            app="bench.apps:build_ingest_only",
            serve_env=app.env_applied,
            startup_s=app_startup_s,
            **(BATCH_TRANSACTIONS.info(value, chosen, names[chosen[0]]) if len(chosen) > 1 else {}),
        )


def serve_whole(bench: Bench, chosen: list[str], mode: str) -> None:
    """serve_{http,grpc}_{single,batch}: the whole app, each repeat waiting for the pool's count."""
    suffix = suffix_of(mode)
    with bench.serving("whole", mode, None) as (instance, topic, startup_s):
        http = ("127.0.0.1", instance.http_port)
        for key, (protocol, kind) in SERVE_PATHS.items():
            name = f"serve_{key}"
            if name not in chosen:
                continue
            bench.record(
                name + suffix,
                bench.repeat(
                    name + suffix,
                    lambda n=name + suffix, p=protocol, k=kind: bench.ingest(
                        n,
                        protocol=p,
                        kind=k,
                        http=http,
                        grpc_target=instance.grpc_target,
                        topic=topic,
                        counter_db=bench.args.redis_db,
                    ),
                ),
                path=protocol,
                kind=kind,
                mode=mode,
                serve_env=instance.env_applied,
                startup_s=startup_s,
            )
