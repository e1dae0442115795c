"""The throwaway secrets `make k8s-lab` deploys with (deployments/k8s-lab/lab_deploy.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import lab_deploy

TEMPLATE = lab_deploy.REPO / "deployments" / "k8s" / "secrets.env.example"


def env(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return dict(pairs)


def test_every_key_of_the_template_gets_a_value_and_none_is_a_placeholder() -> None:
    values = env(lab_deploy.throwaway_secrets_env())
    assert set(values) == set(env(TEMPLATE.read_text()))
    assert all(value and "change-me" not in value for value in values.values())


def test_the_store_urls_carry_the_app_passwords() -> None:
    values = env(lab_deploy.throwaway_secrets_env())
    redis, mongo = urlsplit(values["VOTES_REDIS_URL"]), urlsplit(values["VOTES_MONGO_URL"])
    assert (redis.username, redis.password) == ("votes-app", values["REDIS_APP_PASSWORD"])
    assert (mongo.username, mongo.password) == ("votes-app", values["MONGO_APP_PASSWORD"])
    assert redis.hostname == "votes-redis" and mongo.hostname == "votes-mongo"


def test_every_password_is_fresh() -> None:
    first, again = env(lab_deploy.throwaway_secrets_env()), env(lab_deploy.throwaway_secrets_env())
    passwords = [key for key in first if key.endswith(("PASSWORD", "TOKEN"))]
    assert len(passwords) == 8
    assert len({first[key] for key in passwords}) == len(passwords)  # none shared by two logins
    assert all(first[key] != again[key] for key in passwords)
