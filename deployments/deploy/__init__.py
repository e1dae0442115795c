"""Deploy votes on Kubernetes: KubeRay RayService + Strimzi Kafka + Redis + MongoDB + Grafana.

    python -m deployments.deploy apply  --namespace votes --image REF [--gateway-class NAME]
                                        [--timeout 900] [platform options]
    python -m deployments.deploy status --namespace votes
    python -m deployments.deploy delete --namespace votes [--keep-data]
    common options: --kubeconfig PATH, --context NAME, --dry-run [--verbose],
                    --repo PATH (the votes checkout; default: the current directory),
                    --kustomization DIR (default: <repo>/deployments/k8s; the lab's real
                    node uses deployments/k8s-lab/overlay)
    platform options: --kuberay-namespace, --strimzi-namespace, --gateway-namespace,
                    --allow-from CIDR, --api-server CIDR, --dns CIDR (platform.py; the
                    NetworkPolicies)

The objects are exactly those of `kubectl apply -k deployments/k8s` (rendered by
deployments.manifests), moved to --namespace. `apply` server-side-applies them in dependency order
(namespace, config, Kafka, stores, monitoring, RayService, Gateway) with the official kubernetes
client's DynamicClient, which handles the custom resources too, then waits until the RayService
reports the application RUNNING. `delete` goes in reverse order. `--dry-run` lists (and with
--verbose prints) the objects without touching a cluster or even reading a kubeconfig.

`apply` (dry run included) refuses the placeholder image ghcr.io/votes-contest/votes: nothing is
published there. Build and push your own, then name it with --image or kustomize's `images:`.

Exit status: 0 done/healthy, 1 not ready in time or unhealthy, 2 usage or configuration error.

The modules, each one responsibility:

    objects.py  the objects: apply order, how messages name them, --gateway-class
    platform.py the platform options: operators' and gateway's namespaces, address ranges
    guards.py   what apply refuses (placeholder image and secrets), what a dry run hides
    cluster.py  the cluster behind a small interface (ClusterAPI), and connecting to one
    status.py   reading the RayService's and the other parts' state; `status`
    wait.py     waiting for the applications to be RUNNING
    apply.py    `apply`: preflight (every kind served), apply in order, wait
    delete.py   `delete`: reverse order, Kafka topics before their cluster
    cli.py      the command line

`main` is the package's public face (the lab runs the CLI in-process too).
"""

from deployments.deploy.cli import main

__all__ = ["main"]
