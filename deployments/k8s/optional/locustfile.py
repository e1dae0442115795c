"""Load for the Kubernetes deployment (ConfigMap votes-locustfile, run by the Job votes-locust).

Mostly single votes, some batches, some reads, as the original contest's traffic: every field a
string, as the original generators sent them.
"""

import os
import random
import uuid

from locust import HttpUser, between, task

BANDS = ["Bohemia Suburbana", "Los Tetas", "Aterciopelados", "Café Tacvba", "Soda Stereo"]
ALBUMS = ["Mil palabras", "La Tetamorfosis", "El Dorado", "Re", "Signos"]
TOKEN = os.environ.get("VOTES_WRITE_TOKEN", "")
HEADERS = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}


def vote() -> dict[str, str]:
    return {
        "name": random.choice(BANDS),
        "album": random.choice(ALBUMS),
        "year": str(random.randint(1980, 2020)),
        "rank": str(random.randint(1, 10)),
        "vote_id": str(uuid.uuid4()),
    }


class Voter(HttpUser):
    wait_time = between(0.05, 0.2)

    @task(20)
    def cast(self) -> None:
        self.client.post("/votes", json=vote(), headers=HEADERS)

    @task(2)
    def cast_batch(self) -> None:
        batch = {"votes": [vote() for _ in range(50)]}
        self.client.post("/votes/batch", json=batch, headers=HEADERS, name="/votes/batch")

    @task(1)
    def results(self) -> None:
        self.client.get("/results")
