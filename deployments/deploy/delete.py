"""`delete`: the objects in reverse apply order, Kafka topics before their cluster."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from deployments.deploy.cluster import ClusterAPI, live_object
from deployments.deploy.objects import describe, ordered


def delete(
    cluster: ClusterAPI,
    docs: Sequence[dict[str, Any]],
    keep_data: bool,
    timeout_s: float,
    out: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    deadline = clock() + timeout_s
    topics: list[dict[str, Any]] = []
    for doc in reversed(ordered(docs)):
        if doc["kind"] == "Namespace" and keep_data:
            out(f"kept {describe(doc)} (--keep-data: its volumes stay)")
            continue
        if doc["kind"] in ("Kafka", "KafkaNodePool") and topics:
            # The topic operator (part of the Kafka cluster) must remove the topics' finalizers
            # first, or they block the namespace's deletion forever.
            _wait_gone(cluster, topics, deadline, out, clock, sleep)
            topics = []
        if not cluster.has_kind(doc["apiVersion"], doc["kind"]):
            out(f"skipped {describe(doc)}: kind not served by the cluster")
            continue
        metadata = doc["metadata"]
        found = cluster.delete(
            doc["apiVersion"], doc["kind"], metadata["name"], metadata.get("namespace")
        )
        out(f"{'deleted' if found else 'absent '} {describe(doc)}")
        if found and doc["kind"] == "KafkaTopic":
            topics.append(doc)
    if keep_data:
        out(
            "volumes (Kafka, Redis, MongoDB) kept; "
            "`delete` without --keep-data removes the namespace"
        )
    return 0


def _wait_gone(
    cluster: ClusterAPI,
    docs: Sequence[dict[str, Any]],
    deadline: float,
    out: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    while True:
        left = [doc for doc in docs if live_object(cluster, doc) is not None]
        if not left:
            return
        if clock() >= deadline:
            out("warning: still present (finalizers?): " + ", ".join(describe(d) for d in left))
            return
        sleep(2.0)
