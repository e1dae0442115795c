"""Typed settings: config.yaml's application `args`, overridden by VOTES_* environment variables.

config.yaml is the single source of truth for local runs; a deployment (KubeRay, a shell) overrides
single values through the environment, e.g. VOTES_KAFKA_BOOTSTRAP_SERVERS=kafka:9092. A wrong
setting fails at start with a message naming it and where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "VOTES_"

# The write budget's defaults (serve_app/ingress/admission.py, docs/decisions/0007-write-budget.md).
DEFAULT_WRITE_BYTES_IN_FLIGHT = 2 * 1024 * 1024
DEFAULT_WRITE_LATENCY_TARGET_S = 5.0

# The vote log's write concern by name: docs/decisions/0022-vote-log-write-concern.md.
# majority: journaled on a majority of a replica set (a standalone mongod: its own journal);
# journaled: the primary's journal; acknowledged: in memory only (a crash may lose ~100 ms).
MongoWriteConcern = Literal["majority", "journaled", "acknowledged"]
MONGO_WRITE_CONCERNS: dict[str, dict[str, Any]] = {
    "majority": {"w": "majority", "j": True},
    "journaled": {"w": 1, "j": True},
    "acknowledged": {"w": 1},
}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", min_length=1, description="Kafka bootstrap servers, host:port[,host:port]"
    )
    kafka_topic: str = Field("votes", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    kafka_dlq_topic: str = Field("votes.dlq", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    kafka_delivery_timeout_s: float = Field(
        5.0, gt=0, le=300, description="How long a request waits for Kafka's ack before a 503."
    )
    kafka_producer_queue_max: int = Field(
        100_000, ge=1, le=10_000_000, description="Records in flight per replica before 503s."
    )
    kafka_linger_ms: float = Field(2.0, ge=0, le=1000)
    kafka_consumer_group: str = Field("votes-persister", min_length=1)
    kafka_batch_transactions: bool = Field(
        True,
        description="A batch goes to Kafka in one transaction, all of it or nothing "
        "(docs/decisions/0023-transactional-batches.md); false only to measure what that costs.",
    )
    kafka_batch_producers: int = Field(
        4,
        ge=1,
        le=32,
        description="Transactional producers per ingress replica: the batches "
        "it has in Kafka transactions at once.",
    )
    # Kafka authentication (every Kafka client of the app: the ingress producer, the pool's
    # consumers and dead-letter producers). Locally PLAINTEXT; on Kubernetes SASL_PLAINTEXT with
    # SCRAM-SHA-512 as the Strimzi KafkaUser votes-app (docs/security.md).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka security.protocol"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="librdkafka sasl.mechanism; required with a SASL_* protocol"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user (a Strimzi KafkaUser)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password")
    redis_url: str = Field("redis://127.0.0.1:6379/0")
    mongo_url: str = Field("mongodb://127.0.0.1:27017/")
    mongo_database: str = Field("votes", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    mongo_write_concern: MongoWriteConcern = Field(
        "majority",
        description="When the vote log acknowledges an insert: majority (journaled on a majority; "
        "on a standalone, its journal), journaled (the primary's journal) or acknowledged (in "
        "memory: an unclean stop may lose acknowledged votes, for comparisons only).",
    )
    store_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Redis/MongoDB call timeout of the read API."
    )
    persist_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Redis/MongoDB call timeout of the pool. Generous: a write that times out is "
        "retried while the first may still run, which only adds load to a slow store.",
    )
    write_token: SecretStr | None = Field(
        None, description="When set, write routes and RPCs require 'Authorization: Bearer <token>'."
    )
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After of a 503.")
    write_bytes_in_flight_max: int = Field(
        DEFAULT_WRITE_BYTES_IN_FLIGHT,
        ge=1024,
        le=1024**3,
        description="Bytes of write requests one ingress replica works on at once; past it "
        "a write is shed with 503 / RESOURCE_EXHAUSTED and Retry-After.",
    )
    write_latency_target_s: float = Field(
        DEFAULT_WRITE_LATENCY_TARGET_S,
        gt=0,
        le=60,
        description="Under overload an ingress replica sheds writes to keep the ones it admits "
        "answered within about this many seconds: writes slower than this shrink its write "
        "budget (at most write_bytes_in_flight_max), fast ones grow it back.",
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server.strip()!r} is not host:port")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("mongo_url")
    @classmethod
    def _mongo_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("mongodb", "mongodb+srv"):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_username", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # An empty environment variable (e.g. an unset Secret key) means "not set".
        return None if value == "" else value

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        given = [
            name
            for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
            if getattr(self, name) is not None
        ]
        if sasl and len(given) < 3:
            missing = sorted(
                {"kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"} - set(given)
            )
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs "
                + ", ".join(f"{name} ({env_name(name)})" for name in missing)
            )
        if not sasl and given:
            raise ValueError(
                f"{', '.join(given)} set but kafka_security_protocol is "
                f"{self.kafka_security_protocol}: use SASL_PLAINTEXT or SASL_SSL"
            )
        return self

    def kafka_security_config(self) -> dict[str, str]:
        """The librdkafka settings of authentication: {} locally (PLAINTEXT, librdkafka's
        default)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        config: dict[str, str] = {"security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism is not None:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username is not None:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return config

    def kafka_producer_config(self, client_id: str) -> dict[str, Any]:
        """What every Kafka producer of the app shares (the ingress's, the batches' transactional
        ones, the pool's dead-letter one): accepted means durable, as every in-sync replica has
        the record, and a send retried inside the producer cannot write it twice."""
        return {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
        } | self.kafka_security_config()

    @field_validator("write_token", "kafka_sasl_password")
    @classmethod
    def _empty_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty VOTES_WRITE_TOKEN (e.g. an unset Secret key) means "no auth", not "token ''".
        if value is not None and not value.get_secret_value():
            return None
        return value

    def redacted(self) -> dict[str, Any]:
        """The settings as safe to print or log: no token, no password in a URL."""
        shown = self.model_dump()
        shown["write_token"] = "***" if self.write_token else None
        shown["kafka_sasl_password"] = "***" if self.kafka_sasl_password else None
        shown["redis_url"] = redact_url(self.redis_url)
        shown["mongo_url"] = redact_url(self.mongo_url)
        return shown

    def __repr_args__(self) -> Any:
        # repr()/str() of the settings (a log line, a traceback's locals) are redacted too.
        return list(self.redacted().items())


class SettingsError(ValueError):
    """A setting is wrong; the message names it and where it came from."""


# Query parameters that carry a secret, e.g. redis://host:6379/0?password=... (redis-py reads it).
_SECRET_QUERY_KEYS = frozenset({"password", "pass", "pwd", "passwd", "secret", "token"})


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in query):
        parts = parts._replace(
            query=urlencode(
                [
                    (key, "***" if key.lower() in _SECRET_QUERY_KEYS else value)
                    for key, value in query
                ],
                safe="*",
            )
        )
    return urlunsplit(parts)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(
    args: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge config args with VOTES_* environment overrides and validate them together."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = dict(args or {})
    origin = {name: "config.yaml args" for name in values}
    for field in Settings.model_fields:
        if env_name(field) in environ:
            values[field] = environ[env_name(field)]
            origin[field] = f"environment variable {env_name(field)}"
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            if not error["loc"]:  # a check across settings names them itself
                problems.append(str(error["msg"]).removeprefix("Value error, "))
            elif error["type"] == "extra_forbidden":
                problems.append(
                    f"unknown setting {name!r} (from {origin.get(name, 'config')}); "
                    f"known settings: {', '.join(Settings.model_fields)}"
                )
            else:
                problems.append(
                    f"setting {name!r} (from {origin.get(name, 'defaults')}): {error['msg']}"
                )
        raise SettingsError("invalid votes settings:\n  " + "\n  ".join(problems)) from None
