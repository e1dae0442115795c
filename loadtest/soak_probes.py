"""Probes: known-bad input (invalid votes on both paths, undecodable records in the topic), so
that the rejection and dead-letter panels have something true to show."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.soak_target import Target

PROBE_INVALID_PER_PATH = 3


PROBE_POISON_RECORDS = 3


@dataclass
class Probes:
    http_invalid: int = 0
    http_answers: list[int] = field(default_factory=list)
    grpc_invalid: int = 0
    grpc_answers: list[str] = field(default_factory=list)
    poison_sent: int = 0

    @property
    def as_expected(self) -> bool:
        return (
            all(status == 422 for status in self.http_answers)
            and all(code == "INVALID_ARGUMENT" for code in self.grpc_answers)
            and len(self.http_answers) == self.http_invalid
            and len(self.grpc_answers) == self.grpc_invalid
        )


def send_probes(target: Target) -> Probes:
    import grpc
    import httpx
    from confluent_kafka import Producer

    from devkit.kafka import KAFKA
    from serve_app.grpc_stubs import votes_pb2 as pb
    from serve_app.grpc_stubs import votes_pb2_grpc as pb_grpc

    probes = Probes()
    with httpx.Client(base_url=target.http_url, timeout=10) as client:
        for n in range(PROBE_INVALID_PER_PATH):
            probes.http_invalid += 1
            # rank 0 is out of range: a well-formed vote the API refuses (422, reason invalid).
            body = {"name": "soak probe", "album": f"invalid {n}", "year": 2000, "rank": 0}
            probes.http_answers.append(client.post("/votes", json=body).status_code)
    with grpc.insecure_channel(target.grpc_target) as channel:
        stub = pb_grpc.VoteServiceStub(channel)
        for n in range(PROBE_INVALID_PER_PATH):
            probes.grpc_invalid += 1
            try:
                stub.Cast(
                    pb.Vote(name="soak probe", album=f"invalid {n}", year=2000, rank=0), timeout=10
                )
                probes.grpc_answers.append("OK")
            except grpc.RpcError as exc:
                probes.grpc_answers.append(exc.code().name)
    producer = Producer({"bootstrap.servers": KAFKA, "enable.idempotence": True})
    for n in range(PROBE_POISON_RECORDS):
        producer.produce(
            target.topic,
            value=f"soak probe {n}: not a vote".encode(),
            key=f"soak-probe-{n}".encode(),
        )
    if producer.flush(15) == 0:
        probes.poison_sent = PROBE_POISON_RECORDS
    return probes
