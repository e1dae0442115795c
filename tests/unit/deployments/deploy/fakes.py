"""A fake cluster and clock for the deploy CLI's logic, and a RayService status to script."""

from __future__ import annotations

import copy


class FakeCluster:
    """Serves every kind unless told otherwise; the RayService's status follows a script."""

    def __init__(self, missing: set[str] = frozenset(), statuses: list[dict] | None = None) -> None:
        self.missing = set(missing)
        self.statuses = list(statuses or [])
        self.objects: dict[tuple[str, str], dict] = {}
        self.applied: list[str] = []
        self.deleted: list[str] = []
        self.topic_gets = 0

    def has_kind(self, api_version: str, kind: str) -> bool:
        return kind not in self.missing

    def apply(self, doc: dict) -> None:
        self.applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
        self.objects[(doc["kind"], doc["metadata"]["name"])] = copy.deepcopy(doc)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        if kind == "GatewayClass":
            return {"metadata": {"name": name}}
        obj = self.objects.get((kind, name))
        if obj is None:
            return None
        if kind == "RayService" and self.statuses:
            obj = obj | {
                "status": self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            }
        if kind == "Kafka":
            obj = obj | {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        if kind == "KafkaTopic":
            self.topic_gets += 1
            if self.topic_gets > 2:  # the topic operator needs a moment
                return None
        return obj

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        self.deleted.append(f"{kind}/{name}")
        if kind == "KafkaTopic":
            return True
        return self.objects.pop((kind, name), None) is not None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.5)


def app_status(status: str, ingress: str = "HEALTHY") -> dict:
    return {
        "observedGeneration": 1,
        "activeServiceStatus": {
            "rayClusterName": "votes-x1",
            "rayClusterStatus": {
                "state": "ready",
                "readyWorkerReplicas": 1,
                "desiredWorkerReplicas": 1,
            },
            "applicationStatuses": {
                "votes": {
                    "status": status,
                    "serveDeploymentStatuses": {
                        "VoteIngress": {"status": ingress},
                        "VotePersister": {"status": "HEALTHY"},
                    },
                }
            },
        },
    }
