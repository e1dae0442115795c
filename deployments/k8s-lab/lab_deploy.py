"""`make k8s-lab` applies deployments/k8s with the deploy CLI from a throwaway copy of the checkout.

The deploy CLI reads secrets.env from the checkout's deployments/k8s (no path option); a user's
own secrets.env must never be read or overwritten, so the lab passes --repo with a copy whose
secrets are made up for this run (lab_checkout, which `make k8s-node --app` uses too).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from lab_core import KUBECONFIG, NAMESPACE, PYTHON, REPO, RUN, Lab, LabError, in_netns, lab_env, log

IMAGE = "votes-lab.local/votes:lab"


def password() -> str:
    return secrets.token_hex(16)


def throwaway_secrets_env() -> str:
    """deployments/k8s/secrets.env for one run: every key of secrets.env.example, fresh values.

    The Redis and MongoDB URLs carry the same app passwords as REDIS_APP_PASSWORD and
    MONGO_APP_PASSWORD, as the template says they must.
    """
    redis_app, mongo_app = password(), password()
    mongo_url = f"mongodb://votes-app:{mongo_app}@votes-mongo:27017/votes?authSource=votes"
    return "\n".join(
        [
            f"VOTES_WRITE_TOKEN={password()}",
            f"REDIS_APP_PASSWORD={redis_app}",
            f"VOTES_REDIS_URL=redis://votes-app:{redis_app}@votes-redis:6379/0",
            f"REDIS_PASSWORD={password()}",
            f"REDIS_ADMIN_PASSWORD={password()}",
            f"REDIS_GCS_PASSWORD={password()}",
            "MONGO_ROOT_USERNAME=votes",
            f"MONGO_ROOT_PASSWORD={password()}",
            f"MONGO_APP_PASSWORD={mongo_app}",
            f"VOTES_MONGO_URL={mongo_url}",
            f"GRAFANA_ADMIN_PASSWORD={password()}",
            "",
        ]
    )


def lab_checkout() -> Path:
    """A copy of the files the deploy CLI reads, with throwaway secrets beside the manifests.

    The deploy CLI reads secrets.env from the checkout's deployments/k8s (no path option); a user's
    own secrets.env must never be read or overwritten, so the lab passes --repo with this copy.
    """
    root = RUN / "checkout"
    (root / "deployments").mkdir(parents=True)
    for name in ("config.yaml", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "kuberay", root / "kuberay")
    shutil.copytree(
        REPO / "deployments" / "k8s",
        root / "deployments" / "k8s",
        ignore=shutil.ignore_patterns("secrets.env"),
    )
    (root / "deployments" / "k8s" / "secrets.env").write_text(throwaway_secrets_env())
    (root / "deployments" / "k8s" / "ray-token" / "secrets.env").write_text(
        f"auth_token={secrets.token_hex(32)}\n"
    )
    return root


def deploy(lab: Lab) -> None:
    checkout = lab_checkout()
    cmd = in_netns(
        [
            str(PYTHON),
            "-m",
            "deployments.deploy",
            "apply",
            "--namespace",
            NAMESPACE,
            "--image",
            IMAGE,
            "--kubeconfig",
            str(KUBECONFIG),
            "--repo",
            str(checkout),
            "--timeout",
            "20",
        ]
    )
    log(
        "python -m deployments.deploy apply --namespace votes --image "
        + IMAGE
        + " (throwaway secrets; --timeout 20: nothing here can run Ray Serve)"
    )
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=lab_env(), check=False)
    (RUN / "logs" / "deploy.log").write_text(proc.stdout + proc.stderr)
    lines = proc.stdout.splitlines()
    applied = [line for line in lines if line.startswith("applied ")]
    for line in lines:
        if not line.startswith("applied "):
            print("  | " + line)
    print(f"  | ... {len(applied)} objects applied (all lines in .k8s-lab/run/logs/deploy.log)")
    if proc.returncode not in (0, 1):  # 1: applied, but the RayService is not RUNNING in time
        raise LabError(f"deploy apply failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
