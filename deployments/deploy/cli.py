"""`python -m deployments.deploy`: apply, status or delete (see the package's docstring)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deployments import manifests
from deployments.deploy.apply import apply
from deployments.deploy.cluster import connect
from deployments.deploy.delete import delete
from deployments.deploy.guards import redacted, refuse_placeholder_image, refuse_placeholders
from deployments.deploy.objects import (
    DEFAULT_NAMESPACE,
    DeployError,
    describe,
    ordered,
    set_gateway_class,
)
from deployments.deploy.platform import (
    GATEWAY_NAMESPACE,
    KUBERAY_NAMESPACE,
    STRIMZI_NAMESPACE,
    Platform,
    apply_platform,
)
from deployments.deploy.status import print_status
from deployments.repo import Repo, RepoNotFound, add_repo_option

DEFAULT_TIMEOUT_S = 900.0


def dry_run(command: str, docs: Sequence[dict[str, Any]], namespace: str, verbose: bool) -> int:
    plan = ordered(docs) if command != "delete" else list(reversed(ordered(docs)))
    verb = {"apply": "apply", "delete": "delete", "status": "inspect"}[command]
    print(
        f"dry run: would {verb} {len(plan)} objects in namespace {namespace} (no cluster contacted)"
    )
    for number, doc in enumerate(plan, start=1):
        print(f"  {number:2d}. {describe(doc)}")
    if verbose:
        print(manifests.dump_all_yaml(redacted(doc) for doc in plan), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.deploy",
        description="Deploy votes on Kubernetes (KubeRay, Strimzi): apply, status or delete.",
    )
    parser.add_argument("command", choices=("apply", "status", "delete"))
    parser.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help="default: votes")
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds apply waits for RUNNING (delete: for topics to go); "
        f"default {DEFAULT_TIMEOUT_S:.0f}",
    )
    parser.add_argument(
        "--image",
        help=f"REGISTRY/votes:TAG, your build; apply refuses the placeholder "
        f"{manifests.IMAGE_REPOSITORY} (unless kustomization.yaml's `images:` replaces it)",
    )
    parser.add_argument(
        "--gateway-class",
        help="GatewayClass of the Gateway (default: gateway.yaml's, `eg` for Envoy Gateway)",
    )
    platform = parser.add_argument_group(
        "platform", "where the platform's parts are, for the NetworkPolicies (docs/kubernetes.md)"
    )
    platform.add_argument(
        "--kuberay-namespace",
        default=KUBERAY_NAMESPACE,
        help=f"the KubeRay operator's namespace (default: {KUBERAY_NAMESPACE})",
    )
    platform.add_argument(
        "--strimzi-namespace",
        default=STRIMZI_NAMESPACE,
        help=f"the Strimzi cluster operator's namespace (default: {STRIMZI_NAMESPACE})",
    )
    platform.add_argument(
        "--gateway-namespace",
        default=GATEWAY_NAMESPACE,
        help=f"where the Gateway's data plane runs (default: {GATEWAY_NAMESPACE})",
    )
    platform.add_argument(
        "--allow-from",
        action="append",
        default=[],
        metavar="CIDR",
        help="also let this range reach the Serve ports: load balancers and health checks from "
        "outside the cluster (repeatable; GKE: 35.191.0.0/16 and 130.211.0.0/22)",
    )
    platform.add_argument(
        "--api-server",
        action="append",
        default=[],
        metavar="CIDR",
        help="the API server's addresses, instead of any address but 169.254.0.0/16 (repeatable)",
    )
    platform.add_argument(
        "--dns",
        action="append",
        default=[],
        metavar="CIDR",
        help="also allow DNS to this range: a node-local DNS cache (NodeLocal DNSCache: "
        "169.254.20.10/32; repeatable)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the objects; touch no cluster")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="with --dry-run: print the YAML too"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="delete: keep the namespace and the data volumes"
    )
    parser.add_argument(
        "--kustomization",
        type=Path,
        help="the kustomization to deploy (default: <repo>/deployments/k8s); "
        "deployments/k8s-lab/overlay is the lab's single-node set",
    )
    add_repo_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    real_apply = args.command == "apply" and not args.dry_run
    try:
        repo = Repo.at(args.repo)
        rendered = manifests.render_kustomization(
            args.kustomization or repo.k8s,
            namespace=args.namespace,
            images=manifests.image_override(args.image) if args.image else None,
            # Names are all status/delete need; a real apply needs the real secrets.env.
            example_env_fallback=not real_apply,
        )
        if args.gateway_class:
            set_gateway_class(rendered.docs, args.gateway_class)
        platform = Platform(
            kuberay_namespace=args.kuberay_namespace,
            strimzi_namespace=args.strimzi_namespace,
            gateway_namespace=args.gateway_namespace,
            allow_from=args.allow_from,
            api_server=args.api_server,
            dns=args.dns,
        )
        apply_platform(rendered.docs, platform, args.namespace)
        if args.command == "apply":
            refuse_placeholder_image(rendered.docs)
        if args.dry_run:
            for note in rendered.notes:
                print(f"note: {note}")
        stale = manifests.check(manifests.generated_files(repo))
        if stale:
            message = "kuberay/rayservice.yaml does not match config.yaml: run `make manifests`"
            if real_apply:
                raise DeployError(message)
            print(f"warning: {message}")
        docs = ordered(rendered.docs)
        if args.dry_run:
            return dry_run(args.command, docs, args.namespace, args.verbose)
        if real_apply:
            refuse_placeholders(docs)
        cluster = connect(args.kubeconfig, args.context)
        if args.command == "apply":
            return apply(cluster, docs, args.timeout)
        if args.command == "status":
            return 0 if print_status(cluster, docs) else 1
        return delete(cluster, docs, args.keep_data, args.timeout)
    except (DeployError, manifests.KustomizeError, RepoNotFound) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deploy: interrupted", file=sys.stderr)
        return 130
