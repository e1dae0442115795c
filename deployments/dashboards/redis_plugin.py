"""Grafana's redis-datasource plugin: its query type, and transformations of its frames."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

from deployments.dashboards.data_sources import REDIS

# ---- the Redis plugin's query type (the SDK has no builder for third-party plugins) ------------


class RedisQuery(cogvariants.Dataquery):
    """A query of the redis-datasource plugin: one Redis command on one key."""

    def __init__(self, command: str, key: str, ref_id: str | None = None) -> None:
        self.command = command
        self.key = key
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": REDIS.to_json(),
            "type": "command",
            "command": self.command,
            "keyName": self.key,
            "query": "",
        }
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data["command"], data["keyName"], data.get("refId"))


class Redis(cogbuilder.Builder[RedisQuery]):
    def __init__(self, command: str, key: str) -> None:
        self._internal = RedisQuery(command, key)

    def build(self) -> RedisQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self


# ---- transformations of the plugin's frames --------------------------------------------------
# HGETALL answers one frame with two string fields, "Field" and "Value"; GET one field "Value".


def transform(id_val: str, options: Mapping[str, Any]) -> DataTransformerConfig:
    return DataTransformerConfig(id_val=id_val, options=dict(options))


def to_numbers(*fields: str) -> DataTransformerConfig:
    return transform(
        "convertFieldType",
        {
            "fields": {},
            "conversions": [{"targetField": f, "destinationType": "number"} for f in fields],
        },
    )


def sort_by(field: str, desc: bool) -> DataTransformerConfig:
    return transform("sortBy", {"fields": {}, "sort": [{"field": field, "desc": desc}]})


def top(n: int) -> DataTransformerConfig:
    return transform("limit", {"limitField": n})


def rename(names: Mapping[str, str]) -> DataTransformerConfig:
    return transform(
        "organize", {"excludeByName": {}, "indexByName": {}, "renameByName": dict(names)}
    )


def counts_of(key: str, label: str, n: int | None) -> list[DataTransformerConfig]:
    """A counter hash as rows (label, votes), the largest first, at most n of them."""
    steps = [to_numbers("Value"), sort_by("Value", desc=True)]
    if n is not None:
        steps.append(top(n))
    return [*steps, rename({"Field": label, "Value": "votes"})]


def seconds_as_time() -> list[DataTransformerConfig]:
    """votes:per_second (epoch second -> count) as a time series."""
    return [
        to_numbers("Field", "Value"),
        transform(
            "calculateField",
            {
                "mode": "binary",
                "alias": "time",
                "replaceFields": False,
                "binary": {"left": "Field", "operator": "*", "right": "1000"},
            },
        ),
        transform(
            "convertFieldType",
            {
                "fields": {},
                "conversions": [{"targetField": "time", "destinationType": "time"}],
            },
        ),
        transform(
            "organize",
            {
                "excludeByName": {"Field": True},
                "indexByName": {"time": 0},
                "renameByName": {"Value": "votes/s"},
            },
        ),
        sort_by("time", desc=False),
    ]
